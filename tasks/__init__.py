"""Celery workers running sandbox jobs from Redis; nothing here knows of HTTP."""
