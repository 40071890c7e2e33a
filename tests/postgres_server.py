"""A real PostgreSQL server for tests and benchmarks: Debian's ``postgresql``
package, a throwaway cluster in a temporary directory on a free loopback port.

initdb refuses to run as root; as root the cluster is made and run by the
``postgres`` system user (which the package creates) in a directory it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from urllib.parse import quote


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_bin_dir() -> str | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PostgresServer:
    """``start()`` makes and starts the cluster; ``url(database)``; ``new_schema_url()``; ``stop()``."""

    def __init__(self, bin_dir: str, *, port: int | None = None, durable: bool = False):
        self.bin_dir = bin_dir
        # durable: fsync on, commits not waited for (synchronous_commit=off), as SQLite's
        # WAL with synchronous=NORMAL: safe against a crash of the server, not of the OS
        # for the last moments. Benchmarks use it; tests need no durability at all.
        self.durable = durable
        self.port = port or _free_port()
        self.root = tempfile.mkdtemp(prefix="ppp-otel-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            runuser = shutil.which("runuser")
            self._as_user = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-c"]

    def _run(self, *args: str) -> None:
        command = [os.path.join(self.bin_dir, args[0]), *args[1:]]
        if self._as_user and self._as_user[0] == "su":
            command = [*self._as_user, " ".join(command)]
        else:
            command = [*self._as_user, *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        # A test server: durability off (fsync), so tests do not wait on the disk.
        durability = "" if self.durable else "-c fsync=off -c full_page_writes=off "
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {durability}"
                   "-c synchronous_commit=off -c max_connections=200 "
                   "-c deadlock_timeout=100ms")  # tests race writers on purpose: find their deadlocks soon
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def new_schema_url(self, database: str = "postgres") -> str:
        """A URL whose tables live in a fresh, empty schema: a store of its own, made in milliseconds."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url(database)}?options={quote(f'-csearch_path={name}')}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(*, durable: bool = False) -> PostgresServer:
    """A running server, or RuntimeError saying why there is none."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server installed (apt-get install -y postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise RuntimeError("psycopg is not installed (pip install -e '.[postgres]')") from None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no postgres user to run the server") from None
    server = PostgresServer(bin_dir, durable=durable)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        raise RuntimeError(f"the PostgreSQL server did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("the PostgreSQL server did not listen in 30 s")
