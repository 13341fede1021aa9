"""Fixtures shared by every test layer."""

from tests.support.postgres import postgres_factory, postgres_server, postgres_url

__all__ = ["postgres_factory", "postgres_server", "postgres_url"]
