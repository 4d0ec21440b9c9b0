"""Debian's Chromium, headless with the network blocked, driven over the DevTools protocol
(a websocket; no browser download, no Playwright). Opens a page, waits for its load event,
evaluates an expression in it and records every request the page tried to make."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No name resolves and every connection goes to a proxy where nothing listens (port 9,
    # discard): anything a page fetches from the network fails.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1200,900",
    "--remote-debugging-port=0",
)
START_SECONDS = 60
PAGE_SECONDS = 60


class BrowserError(RuntimeError):
    pass


@dataclass
class Page:
    value: Any  # what the evaluated expression returned
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    failed: dict[str, str] = field(default_factory=dict)  # URL -> network error


class HeadlessChromium:
    def __init__(self, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._closing = ExitStack()
        self._log = (profile.parent / "chromium.log").open("w+")
        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # Chromium writes its port (0 asks for a free one) and endpoint path here.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_SECONDS
        while not (active.exists() and len(active.read_text().splitlines()) == 2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserError(f"Chromium did not start: {self.log_tail()}")
            time.sleep(0.1)
        port, path = active.read_text().splitlines()
        # proxy=None: the DevTools endpoint is on loopback, whatever the environment says.
        self._socket: ClientConnection = self._closing.enter_context(
            connect(f"ws://127.0.0.1:{port}{path}", proxy=None, max_size=None, open_timeout=30)
        )
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    def log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:]

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:
            reply = json.loads(self._socket.recv(timeout=PAGE_SECONDS))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def open(self, url: str, expression: str) -> Page:
        """Loads `url` in a new tab, then returns `expression`'s value and the page's
        requests (the page itself included)."""
        self._events = []
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            self._call("Network.enable", session)
            self._call("Page.enable", session)
            self._call("Page.navigate", session, url=url)
            deadline = time.monotonic() + PAGE_SECONDS
            while not any(
                e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session
                for e in self._events
            ):
                if time.monotonic() > deadline:
                    raise BrowserError(f"{url} did not finish loading")
                self._events.append(json.loads(self._socket.recv(timeout=PAGE_SECONDS)))
            result = self._call(
                "Runtime.evaluate", session, expression=expression, returnByValue=True
            )
            if "exceptionDetails" in result:
                raise BrowserError(f"the expression failed: {result['exceptionDetails']}")
            page = Page(result["result"].get("value"))
        finally:
            self._call("Target.closeTarget", targetId=target)
        urls: dict[str, str] = {}
        for event in self._events:
            params = event.get("params", {})
            if event.get("method") == "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
                page.requests.append(params["request"]["url"])
            elif event.get("method") == "Network.loadingFailed":
                url_failed = urls.get(params["requestId"], params["requestId"])
                page.failed[url_failed] = params.get("blockedReason") or params["errorText"]
        return page

    def close(self) -> None:
        self._closing.close()
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        self._log.close()
