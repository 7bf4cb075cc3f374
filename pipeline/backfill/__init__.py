"""The backfill driver: the plan made before anything is read (``plan``), the Spark steps that
score chunks of it and carry each key's state between them (``chunks``), the progress folder it
resumes from (``progress``) and the run (``run``)."""
