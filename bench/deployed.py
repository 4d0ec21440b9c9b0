"""The deployed path for benchmarks: the real `outreach dev` (Dagster webserver, daemon and
code server, the API, the sandbox Apollo) on a fresh database, driven over HTTP as a user
would, and stopped with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FINAL = ("completed", "failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dev:
    api: httpx.Client
    home: Path
    database_url: str
    log: Path

    def post(self, data: bytes, name: str, bucket: str = "ny-construction-plumbers") -> str:
        response = self.api.post(
            "/v1/uploads", files={"file": (name, data, "text/csv")}, data={"bucket_id": bucket}
        )
        response.raise_for_status()
        return str(response.json()["upload_id"])

    def upload(self, upload_id: str) -> dict:
        response = self.api.get(f"/v1/uploads/{upload_id}")
        response.raise_for_status()
        return dict(response.json())

    def wait_final(self, upload_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.upload(upload_id)
            if state["status"] in FINAL:
                return state
            time.sleep(0.1)
        return self.upload(upload_id)

    def lead_count(self) -> int:
        count, after = 0, None
        while True:
            params: dict[str, int] = {"limit": 500}
            if after is not None:
                params["after"] = after
            page = self.api.get("/v1/leads", params=params).json()
            count += len(page["items"])
            after = page["next_after"]
            if after is None:
                return count


def _server_url() -> str:
    return os.environ.get("OUTREACH_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432")


def _admin(url: str):  # type: ignore[no-untyped-def]
    return create_engine(
        make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )


def _drop(url: str) -> None:
    engine = _admin(url)
    name = make_url(url).database
    with engine.connect() as conn:
        for database in (name, f"{name}_dagster"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    engine.dispose()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the whole tree, as Ctrl-C would; SIGKILL whatever is left after 30 s."""
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    _, alive = psutil.wait_procs(tree, timeout=30)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    process.wait(10)


@contextlib.contextmanager
def outreach_dev(keep: bool = False) -> Iterator[Dev]:
    """Start `outreach dev` on a fresh database of the server at OUTREACH_BENCH_SERVER_URL
    (default: the machine's PostgreSQL), create a team, warm the pipeline up with one
    upload, and yield a client with the team's key."""
    home = Path(tempfile.mkdtemp(prefix="outreach-bench-dev-"))
    database_url = f"{_server_url()}/outreach_bench_{uuid.uuid4().hex[:8]}"
    api_port, dagster_port = free_port(), free_port()
    env = {
        **os.environ,
        "OUTREACH_HOME": str(home),
        "OUTREACH_DATABASE_URL": database_url,
        "OUTREACH_PROVIDER_MODE": "sandbox",
    }
    env.pop("DAGSTER_HOME", None)
    created = subprocess.run(
        [str(BIN / "outreach"), "team", "create", "bench"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = next(line.split()[-1] for line in created.splitlines() if line.startswith("api_key"))
    log = home / "dev.log"
    process = subprocess.Popen(
        [
            str(BIN / "outreach"),
            "dev",
            "--api-port",
            str(api_port),
            "--dagster-port",
            str(dagster_port),
        ],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if api.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"outreach dev did not start; see {log}")
            time.sleep(0.5)
        dev = Dev(api, home, database_url, log)
        # The first run waits for the code server to load the definitions, once: not what
        # a user waits for once the system is up.
        warm = dev.post(b"Phone,Name\n2125550000,Warm Up\n", "warm-up.csv")
        if dev.wait_final(warm, 180)["status"] != "completed":
            raise RuntimeError(f"the warm-up upload did not complete; see {log}")
        yield dev
    finally:
        api.close()
        _stop(process)
        if not keep:
            _drop(database_url)
