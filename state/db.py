"""Engine creation, SQLite tuning and Alembic migrations for the state database.

Alembic is imported only to migrate: which revision the code ships and which one a database is
at are read without it (the migration files' `revision` lines, the `alembic_version` table), so
a verb that only reads the state (`status`, `report`) does not pay for loading it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "po_connector_read_only"  # execution option: a read-only SQLite transaction


class StateUrlError(ValueError):
    """The state URL cannot be parsed, names an unsupported backend or driver, or is refused."""


class StateUnavailableError(RuntimeError):
    """The state database server cannot be reached now (refused, timed out): try again later."""


# Words of a DBAPI error that mean the server is down or unreachable, not misconfigured.
_UNREACHABLE = ("connection refused", "timeout expired", "timed out", "could not connect", "no route to host")


def masked_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparsable url)"


def _where(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def open_problem(url: str, exc: BaseException) -> StateUrlError | StateUnavailableError:
    """What went wrong opening the state at `url`, as one line with the fix; no password in it."""
    shown = masked_url(url)
    if isinstance(exc, NoSuchModuleError | ImportError):
        driver = getattr(exc, "name", None) or make_url(url).drivername
        return StateUrlError(
            f"{shown}: the database driver {driver!r} is not installed; "
            "run pip install 'po-connector[postgres]' and use postgresql+psycopg:// (or postgresql://)"
        )
    text = str(getattr(exc, "orig", None) or exc)
    first = " ".join(text.split("\n")[0].split())
    password = make_url(url).password if "://" in url else None
    if password:
        first = first.replace(str(password), "***")
    lowered = text.lower()
    if any(words in lowered for words in _UNREACHABLE):
        return StateUnavailableError(
            f"{shown}: cannot reach the database server at {_where(url)} ({first}); "
            "is it running and accepting TCP connections?"
        )
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return StateUrlError(f"{shown}: the server refused the user or password ({first})")
    if "does not exist" in lowered:
        return StateUrlError(f"{shown}: {first}; create it or fix the url")
    if "unable to open database file" in lowered:
        return StateUrlError(f"{shown}: cannot open the SQLite file (is its folder writable?)")
    return StateUrlError(f"{shown}: cannot open the state database: {first}")


def open_state(url: str, *, migrate: bool = True, probe: bool = True) -> Engine:
    """An engine for `url` that has been connected once (and migrated to head when `migrate`);
    with neither `migrate` nor `probe`, an engine that connects on first use.

    Raises StateUrlError for what configuration must fix and StateUnavailableError for a server
    that is down, each one line naming the masked URL; never a driver traceback.
    """
    engine = make_engine(url)
    try:
        if migrate:
            ensure_schema(engine)
        elif probe:
            with engine.connect():
                pass
    except (DBAPIError, ImportError, NoSuchModuleError) as exc:
        engine.dispose()
        raise open_problem(url, exc) from None
    return engine


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-locking transactions."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StateUrlError(f"cannot parse state url: {type(exc).__name__}") from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise StateUrlError(f"unsupported state backend {backend!r} (use sqlite or postgresql)")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend == "postgresql":
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except (ImportError, NoSuchModuleError) as exc:
            raise open_problem(url, exc) from None
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateUrlError(
                    f"{masked_url(url)}: cannot create the folder {folder}: {exc.strerror}"
                ) from None
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _tune_sqlite(engine)
        return engine
    raise AssertionError(backend)  # pragma: no cover - backends checked above


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: concurrent processes wait on the busy
        # timeout instead of failing later with "database is locked" on lock upgrade. Readers
        # (status, report) ask for READ_ONLY and never hold the write lock.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]+)"|None)\s*$', re.M)


@functools.cache
def _shipped() -> dict[str, str | None]:
    """revision -> down revision, read from the migration files."""
    chain: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = {match[1]: match[2] for match in _REVISION.finditer(path.read_text(encoding="utf-8"))}
        if found.get("revision"):
            chain[str(found["revision"])] = found.get("down_revision")
    return chain


def head_revision() -> str:
    """The newest migration revision this code knows (the one no other revision follows)."""
    chain = _shipped()
    heads = set(chain) - {down for down in chain.values() if down}
    if len(heads) != 1:
        raise RuntimeError(f"state/migrations has {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def known_revisions() -> set[str]:
    """Every migration revision this code ships."""
    return set(_shipped())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])


MIGRATION_LOCK_ID = 0x706F636F  # any constant shared by every po-connector process


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent, safe when several processes start at once).

    SQLite serializes through BEGIN IMMEDIATE; PostgreSQL through a transaction advisory lock.
    Alembic reads the current revision after the lock is held, so a late starter finds the work done.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        from alembic import command

        command.upgrade(alembic_config(connection), revision)


def ensure_schema(engine: Engine) -> None:
    """Migrate on first use: a no-op when the database is already at head."""
    if current_revision(engine) != head_revision():
        upgrade(engine)
