"""Fixtures shared by every test layer."""

from tests.support.broker import celery_queue, rabbitmq, workers
from tests.support.postgres import postgres_factory, postgres_server, postgres_url

__all__ = ["celery_queue", "postgres_factory", "postgres_server", "postgres_url", "rabbitmq", "workers"]
