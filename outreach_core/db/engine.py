"""Connections. Two roles: the owner (migrations, database creation; never used to serve a
tenant) and the application role, which owns nothing and is subject to RLS."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Executable, Row, create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from outreach_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

DATABASE_NAME = "outreach"
_EMBEDDED: list[object] = []
DAGSTER_DATABASE_SUFFIX = "_dagster"


def embedded_server_url(home: Path, keep_running: bool = True) -> URL:
    """Start (or reuse) the embedded PostgreSQL under `home` and return its owner URL.
    By default it keeps running for the next command (demo, dev, CLI); tests stop it when
    their process ends."""
    import pgserver  # heavy import, only needed for the embedded default

    pgdata = (home / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    _EMBEDDED.append(server)  # its handle must live as long as we use it
    return make_url(server.get_uri()).set(drivername="postgresql+psycopg")


def owner_url(settings: Settings | None = None) -> URL:
    settings = settings or get_settings()
    if settings.database_url is None:
        return embedded_server_url(settings.home).set(database=DATABASE_NAME)
    url = make_url(settings.database_url.get_secret_value())
    return url.set(drivername="postgresql+psycopg")


def app_url(settings: Settings | None = None) -> URL:
    settings = settings or get_settings()
    if settings.app_database_url is not None:
        url = make_url(settings.app_database_url.get_secret_value())
        return url.set(drivername="postgresql+psycopg")
    password = settings.app_db_password.get_secret_value() if settings.app_db_password else None
    owner = owner_url(settings)
    # URL.create, not .set(): .set(password=None) would keep the owner's password.
    return URL.create(
        owner.drivername,
        username=settings.app_db_role,
        password=password,
        host=owner.host,
        port=owner.port,
        database=owner.database,
        query=owner.query,
    )


def dagster_storage_url(settings: Settings | None = None) -> URL:
    """Dagster's storage for this deployment: OUTREACH_DAGSTER_DATABASE_URL, else the
    application database's name + `_dagster` on the same server."""
    settings = settings or get_settings()
    if settings.dagster_database_url is not None:
        url = make_url(settings.dagster_database_url.get_secret_value())
        return url.set(drivername="postgresql+psycopg")
    owner = owner_url(settings)
    return owner.set(database=f"{owner.database}{DAGSTER_DATABASE_SUFFIX}")


def ensure_database(url: URL) -> None:
    """Create the database named in `url` if it does not exist (needs CREATEDB)."""
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        maintenance.dispose()


# Connections an API worker keeps for the webhook's one-statement transactions. Few on
# purpose: in a burst, more backends than cores only contend for PostgreSQL's locks.
AUTOCOMMIT_POOL_SIZE = 4


@cache
def app_engine() -> Engine:
    return create_engine(app_url(), pool_pre_ping=True, pool_size=5, max_overflow=5)


@cache
def owner_engine() -> Engine:
    return create_engine(owner_url(), pool_pre_ping=True, pool_size=2)


def set_tenant(session: Session, team_id: uuid.UUID) -> None:
    # is_local=true: the setting ends with the transaction, so a pooled connection never
    # carries one tenant into the next request or job.
    session.execute(text("SELECT set_config('app.team_id', :t, true)"), {"t": str(team_id)})


@contextmanager
def tenant_session(team_id: uuid.UUID, engine: Engine | None = None) -> Iterator[Session]:
    """One transaction scoped to one team; commits on success, rolls back on error."""
    with Session(engine or app_engine(), expire_on_commit=False) as session, session.begin():
        set_tenant(session, team_id)
        yield session


@cache
def autocommit_engine() -> Engine:
    # No overflow: an overflow connection is opened and closed per request. No pre-ping (a
    # round trip per call): see execute_autocommit.
    return create_engine(
        app_url(),
        isolation_level="AUTOCOMMIT",
        pool_size=AUTOCOMMIT_POOL_SIZE,
        max_overflow=0,
    )


def execute_autocommit(statement: Executable, params: dict[str, Any]) -> list[Row[Any]]:
    """Run one statement as its own transaction (no BEGIN or COMMIT round trips) and return
    its rows: for the migrations' functions that scope themselves to one team (the
    webhook's). A pooled connection the server has dropped fails once, is thrown away with
    the rest of the pool, and the statement runs again on a fresh one, so it must be
    idempotent."""
    try:
        return _execute_once(statement, params)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("the database dropped a pooled connection; running the statement again")
        return _execute_once(statement, params)


def _execute_once(statement: Executable, params: dict[str, Any]) -> list[Row[Any]]:
    with autocommit_engine().connect() as conn:
        return list(conn.execute(statement, params))


@contextmanager
def system_session(engine: Engine | None = None) -> Iterator[Session]:
    """A transaction with no tenant: RLS shows it no tenant rows. Only the SECURITY DEFINER
    functions from the migrations (api key lookup, pending uploads) answer here."""
    with Session(engine or app_engine(), expire_on_commit=False) as session, session.begin():
        yield session
