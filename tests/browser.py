"""A real headless browser for tests: Debian's Chromium, driven through the Chrome DevTools
Protocol over a websocket (websocket-client), so a test sees what a person's browser would:
the page's scripts run, every console error or uncaught exception is caught, and so is every
request that would need a network (a CDN, say).

Without Chromium the tests that need it are skipped, except in CI (``CI=true``), where they
fail: .ci/run installs it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def need_chromium() -> str:
    """Chromium's path; skip the test without it (fail in CI, which must have it)."""
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@dataclass
class Page:
    """What opening a page showed: its console errors and uncaught exceptions, the addresses
    it asked a network for, and the value of the expression evaluated in it."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    value: Any = None


class _Session:
    """One websocket to one page: calls in order, the events between them read for errors."""

    def __init__(self, url: str, timeout: float) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.seen: set[str] = set()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = self._read()
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, event: str) -> None:
        while event not in self.seen:
            self._read()

    def _read(self) -> dict[str, Any]:
        message = json.loads(self.ws.recv())
        method, params = message.get("method"), message.get("params", {})
        if method:
            self.seen.add(method)
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.errors.append("console: " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            exception = details.get("exception", {}).get("description", "")
            self.errors.append(f"exception: {details.get('text', '')} {exception}".strip())
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url.startswith(("http:", "https:", "ws:", "wss:")):
                self.requests.append(url)
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return message


def open_page(path: Path, expression: str, profile: Path, timeout: float = 60) -> Page:
    """Open ``path`` in headless Chromium with a new profile, wait for it to load, then
    evaluate ``expression`` (it may return a promise) and close the browser."""
    browser = subprocess.Popen(
        [
            need_chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port there
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if browser.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit status {browser.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        target = next(t for t in targets if t["type"] == "page")
        session = _Session(target["webSocketDebuggerUrl"], timeout)
        for domain in ("Runtime", "Log", "Network", "Page"):
            session.call(f"{domain}.enable")
        session.call("Page.navigate", url=path.resolve().as_uri())
        session.wait_for("Page.loadEventFired")
        result = session.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"the expression raised: {result['exceptionDetails']}")
        page = Page(session.errors, session.requests, result["result"].get("value"))
        session.ws.close()
        return page
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
