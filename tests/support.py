"""Plain helpers the tests share (importable by name from any test directory)."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import ModuleType


#: What would send a test's requests to a local chat server elsewhere, or point a judge at
#: another endpoint: proxies, and the LLM endpoint settings of the environment.
LLM_AMBIENT = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
               "PPP_OTEL_LLM_BASE_URL", "OPENAI_BASE_URL", "PPP_OTEL_LLM_MODEL", "PPP_OTEL_LLM_API_KEY",
               "OPENAI_API_KEY", "PPP_OTEL_CONFIG")


def clear_llm_ambient(monkeypatch) -> None:
    for name in LLM_AMBIENT:
        monkeypatch.delenv(name, raising=False)


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is no package's module (under benchmarks/), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(predicate, timeout_s: float = 20.0):
    """Poll until ``predicate()`` is truthy; returns its last value (a wait, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout_s: float = 15) -> None:
    """Ask a server process to stop (it may flush on the signal), kill it if it will not."""
    if process is not None and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
