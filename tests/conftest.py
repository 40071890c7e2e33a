"""Shared fixtures: real SQLite files, a real OTel SDK pipeline, a real Phoenix."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support import free_port, stop_process, wait_for  # noqa: F401  (tests import them from here too)


class PhoenixServer:
    """A ``phoenix serve`` process on free localhost ports with its own working directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "phoenix.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90) -> None:
        env = dict(os.environ)
        env.update(
            PHOENIX_WORKING_DIR=str(self.workdir),
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(self.port),
            PHOENIX_GRPC_PORT=str(self.grpc_port),
            PHOENIX_TELEMETRY_ENABLED="false",
        )
        executable = shutil.which("phoenix", path=os.path.dirname(sys.executable)) or shutil.which("phoenix")
        if executable is None:
            pytest.skip("arize-phoenix is not installed (pip install -e '.[all]')")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [executable, "serve"], cwd=self.workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"phoenix serve exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"phoenix serve did not become healthy in {timeout_s}s")

    def stop(self) -> None:
        stop_process(self.process)
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory) -> PhoenixServer:
    """One real Phoenix for the session; tests use their own project names to stay apart."""
    server = PhoenixServer(tmp_path_factory.mktemp("phoenix"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "trajectories.db"


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (Debian's package, a temporary cluster)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from postgres_server import start_server

    try:
        server = start_server()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL store (a schema of its own) for one test."""
    return postgres_server.new_schema_url()


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """A fresh, empty trajectory store on each backend: a SQLite path, then a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")  # not db_path's file: a test may use both
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def backend(store_url) -> str:
    return "postgresql" if store_url.startswith("postgresql://") else "sqlite"


@pytest.fixture
def no_ambient_database(monkeypatch, tmp_path):
    """The developer's own database and config are never picked up by a test."""
    monkeypatch.delenv("PPP_OTEL_DB", raising=False)
    monkeypatch.delenv("PPP_OTEL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
