"""Messaging: the Celery app built from the settings, the transport that survives hostile
queue items, and the one place that publishes a job's message. Only this package (and the
worker's task in :mod:`horus.execution`) touches Celery."""
