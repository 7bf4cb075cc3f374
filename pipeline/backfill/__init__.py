"""The backfill driver: the plan made before anything is read (``plan``) and its run in chunks with
progress files (``run``)."""
