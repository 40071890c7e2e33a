"""The system's headless Chromium, driven over the DevTools protocol, to look at a page as a person would.

Chromium comes from the distribution (Debian package ``chromium``, installed
by ``.ci/run``); nothing is downloaded. It starts with a fresh profile and
every background service off, listens for DevTools on a loopback port it
picks, and is spoken to over that websocket (``websocket-client``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageVisit:
    """What happened while a page loaded: its console errors, exceptions and requests."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Chromium:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, executable: str, *, width: int = 1280, height: int = 900, timeout_s: float = 60):
        self.executable = executable
        self.width, self.height = width, height
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="ppp-chromium-")
        self.process: subprocess.Popen | None = None
        self.ws = None
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        import websocket  # websocket-client

        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port = self._devtools_port()
        page = self._page_target(port)
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=self.timeout_s, suppress_origin=True)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  width=self.width, height=self.height, deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _devtools_port(self) -> int:
        # Chromium writes the port it chose into the profile once it listens.
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode} before listening")
            if marker.exists():
                text = marker.read_text().split()
                if text:
                    return int(text[0])
            time.sleep(0.1)
        raise RuntimeError(f"chromium did not open its DevTools port in {self.timeout_s}s")

    def _page_target(self, port: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                pages = [t for t in json.load(response) if t.get("type") == "page"]
            if pages:
                return pages[0]
            time.sleep(0.1)
        raise RuntimeError("chromium has no page to drive")

    # --- the protocol --------------------------------------------------------------

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        my_id = self._next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for_event(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event["method"] == method:
                return self.events.pop(i)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("method") == method:
                return message
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"no {method} within {self.timeout_s}s")

    # --- what a test does ------------------------------------------------------------

    def open(self, url: str) -> PageVisit:
        """Load ``url`` and wait for its load event; what the page logged on the way."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")
        # Whatever the page's scripts do right after load gets a moment to complain.
        self.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 200)))", await_promise=True)
        visit = PageVisit()
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                visit.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                     for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                visit.console_errors.append(details.get("exception", {}).get("description")
                                            or details.get("text", "exception"))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                visit.console_errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                visit.requests.append(params.get("request", {}).get("url", ""))
        return visit

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def screenshot(self, path: str | os.PathLike, *, height: int | None = None) -> Path:
        """A PNG of the page from its top: ``height`` CSS pixels, else the whole page."""
        if height is None:
            metrics = self.call("Page.getLayoutMetrics")
            height = int(metrics.get("cssContentSize", metrics.get("contentSize"))["height"])
        self.call("Emulation.setDeviceMetricsOverride",
                  width=self.width, height=height, deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png",
                         clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})
        out = Path(path)
        out.write_bytes(base64.b64decode(data["data"]))
        self.call("Emulation.setDeviceMetricsOverride",
                  width=self.width, height=self.height, deviceScaleFactor=1, mobile=False)
        return out


@pytest.fixture(scope="module")
def chromium():
    """The distribution's Chromium, started once for the module (import this fixture)."""
    pytest.importorskip("websocket", reason="the browser tests need websocket-client (the test extra)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (.ci/run installs it)")
    with Chromium(executable) as browser:
        yield browser
