"""The team stack on one machine (PostgreSQL, MLflow server, Redis, Dagster daemon and UI, Celery
workers): ``landslide stack start`` / ``stop`` (``stack.stack``), and a client that sends the
survey chain through its run queue (``stack.client``). Infrastructure, not domain code."""
