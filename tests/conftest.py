"""Test fixtures: a fresh PostgreSQL database per test session (the machine's server when
OUTREACH_TEST_DATABASE_URL is set, else an embedded one), migrated, with the application
connecting as its non-owner role so RLS is really in force."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="outreach-tests-"))


def _server_url() -> URL:
    configured = os.environ.get("OUTREACH_TEST_DATABASE_URL")
    if configured:
        return make_url(configured).set(drivername="postgresql+psycopg")
    from outreach_core.db.engine import embedded_server_url

    return embedded_server_url(Path(tempfile.gettempdir()) / "outreach-test-pg", keep_running=False)


def _configure() -> URL:
    server = _server_url()
    name = f"outreach_test_{uuid.uuid4().hex[:10]}"
    database = server.set(database=name)
    os.environ["OUTREACH_HOME"] = str(_SESSION_HOME)
    os.environ["OUTREACH_DATABASE_URL"] = database.render_as_string(hide_password=False)
    os.environ["OUTREACH_DATALAKE_URL"] = str(_SESSION_HOME / "datalake")
    os.environ.setdefault("OUTREACH_PROVIDER_MODE", "sandbox")
    return database


_DATABASE = _configure()


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[URL]:
    from outreach_core.db.engine import app_engine, owner_engine
    from outreach_core.db.migrate import migrate

    migrate()
    yield _DATABASE
    app_engine().dispose()
    owner_engine().dispose()
    from outreach_core.db.engine import dagster_storage_url

    admin = create_engine(_DATABASE.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in (_DATABASE.database, dagster_storage_url().database):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture
def team():  # type: ignore[no-untyped-def]
    from outreach_core.teams import create_team

    return create_team(f"team-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def other_team():  # type: ignore[no-untyped-def]
    from outreach_core.teams import create_team

    return create_team(f"other-{uuid.uuid4().hex[:6]}")


class ApiServer:
    def __init__(self, app: Any = None) -> None:
        import socket
        import threading

        import uvicorn

        if app is None:
            from outreach_api.main import app

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        import time

        import httpx

        self.thread.start()
        for _ in range(100):
            try:
                httpx.get(f"{self.base_url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("API server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def api_server() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def serve() -> Iterator[Callable[[Any], ApiServer]]:
    """Serves apps of the test's own (say, with other limits) until the test ends."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(ApiServer(app))


@pytest.fixture
def client(api_server: ApiServer, team):  # type: ignore[no-untyped-def]
    import httpx

    with httpx.Client(
        base_url=api_server.base_url,
        headers={"Authorization": f"Bearer {team.api_key}"},
        timeout=30,
    ) as c:
        yield c
