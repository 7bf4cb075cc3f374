"""spark-submit entry points of seqstream (each module also runs with plain ``python -m``)."""
