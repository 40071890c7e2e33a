"""Nothing ``ppp-otel ingest`` answered 200 for is lost: restarts, SIGTERM, kill -9, floods, bad bodies.

Each test drives a real ``ppp-otel ingest`` process (or an in-process
``IngestServer``) over real sockets.
"""

from __future__ import annotations

import gzip
import http.client
import signal
import socket
import threading
import time

import pytest

from ingest_process import IngestProcess, merged, trace_hex, trajectory_request, turns_by_trace
from ppp_otel.ingest.server import IngestServer

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(host: str, port: int, body: bytes, headers: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/traces", body=body, headers=headers or PROTOBUF)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def raw_exchange(host: str, port: int, head: bytes, body_chunks, timeout: float = 30) -> bytes:
    """Send a hand-made request (headers, then chunks) while reading what the server answers
    until it closes the connection."""
    answer = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        def read() -> None:
            try:
                while data := s.recv(65536):
                    answer.extend(data)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            s.sendall(head)
            for chunk in body_chunks:
                s.sendall(chunk)
            # No half-close: uvicorn takes it for a client gone. These answers close the connection.
        except OSError:
            pass  # the server answered and closed early: what it said is read meanwhile
        reader.join(timeout)
    return bytes(answer)


# --- item: a chunk size of -1 and an oversized body ----------------------------

def test_a_chunk_size_of_minus_one_gets_400_and_the_rest_is_never_buffered(db_path):
    ingest = IngestProcess(db_path, "--max-body-bytes", "1000000").start()
    try:
        before = ingest.rss_kib()
        head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n-1\r\n")
        answer = raw_exchange(ingest.host, ingest.port, head, (b"x" * 1_000_000 for _ in range(200)))
        grown_mib = (ingest.rss_kib() - before) / 1024
    finally:
        ingest.stop()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert grown_mib < 50  # 200 MB were sent after the bad chunk header


def test_a_body_over_the_limit_gets_413_read_not_reset_with_bounded_memory(db_path):
    ingest = IngestProcess(db_path, "--max-body-bytes", "1000000").start()
    try:
        before = ingest.rss_kib()
        size = 40_000_000
        head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                + f"Content-Length: {size}\r\n\r\n".encode())
        answer = raw_exchange(ingest.host, ingest.port, head, (b"x" * 1_000_000 for _ in range(size // 1_000_000)))
        grown_mib = (ingest.rss_kib() - before) / 1024
    finally:
        ingest.stop()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"over the limit of 1000000 bytes" in answer
    assert grown_mib < 30


def test_a_chunked_body_over_the_limit_gets_413(db_path):
    with IngestServer(db_path, port=0, max_body_bytes=1000) as server:
        head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        chunks = [b"400\r\n" + b"x" * 1024 + b"\r\n"] * 4 + [b"0\r\n\r\n"]
        answer = raw_exchange(server.host, server.port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# --- item: turns pending at SIGTERM, then a restart -------------------------------

def test_turns_pending_at_sigterm_are_stored_once_their_trajectory_arrives_after_a_restart(db_path):
    ingest = IngestProcess(db_path).start()
    turns_only = merged(trajectory_request(k, 5, with_trajectory=False) for k in range(1, 6))
    assert post(ingest.host, ingest.port, turns_only.SerializeToString())[0] == 200
    assert ingest.stop(signal.SIGTERM) == 0
    assert turns_by_trace(db_path) == {}  # nothing to attach them to yet
    ingest = IngestProcess(db_path).start()
    try:
        trajectories = merged(trajectory_request(k, 5, with_turns=False) for k in range(1, 6))
        assert post(ingest.host, ingest.port, trajectories.SerializeToString())[0] == 200
    finally:
        assert ingest.stop(signal.SIGTERM) == 0
    assert turns_by_trace(db_path) == {trace_hex(k): 5 for k in range(1, 6)}


def test_turns_held_by_one_of_two_ingest_processes_on_a_file_land_when_the_other_stores_their_trajectory(db_path):
    from support import wait_for

    first, second = IngestProcess(db_path).start(), IngestProcess(db_path).start()
    try:  # spans of one trace on two processes, as a round-robin balancer sends them
        turns_only = merged(trajectory_request(k, 5, with_trajectory=False) for k in range(1, 4))
        assert post(first.host, first.port, turns_only.SerializeToString())[0] == 200
        trajectories = merged(trajectory_request(k, 5, with_turns=False) for k in range(1, 4))
        assert post(second.host, second.port, trajectories.SerializeToString())[0] == 200
        expected = {trace_hex(k): 5 for k in range(1, 4)}
        assert wait_for(lambda: turns_by_trace(db_path) == expected), turns_by_trace(db_path)
    finally:
        assert first.stop(signal.SIGTERM) == 0 and second.stop(signal.SIGTERM) == 0


def test_turns_pending_are_reported_by_status_while_they_wait(db_path, tmp_path):
    import json
    import subprocess

    from ingest_process import PPP_OTEL

    with IngestServer(db_path, port=0) as server:
        assert post(server.host, server.port,
                    trajectory_request(7, 3, with_trajectory=False).SerializeToString())[0] == 200
    done = subprocess.run([PPP_OTEL, "status", "--db", str(db_path), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pending"]["pending_turns"] == 3


def test_pending_turns_older_than_the_retention_are_deleted(db_path):
    import sqlite3
    from contextlib import closing

    from ppp_otel.storage.sqlite import staging

    with IngestServer(db_path, port=0) as server:
        assert post(server.host, server.port,
                    trajectory_request(8, 2, with_trajectory=False).SerializeToString())[0] == 200
    with closing(sqlite3.connect(db_path)) as conn:
        assert staging.purge(conn, 3600) == 0  # young: kept
        assert staging.purge(conn, 3600, now=time.time() + 7200) == 2
        assert conn.execute("SELECT count(*) FROM pending_spans").fetchone()[0] == 0


# --- item: SIGTERM with idle and half-open connections ----------------------------

def test_sigterm_exits_within_5_s_with_idle_and_half_open_connections(db_path):
    ingest = IngestProcess(db_path).start()
    sockets = []
    try:
        for _ in range(50):  # idle keep-alive connections after a request each
            s = socket.create_connection((ingest.host, ingest.port))
            s.sendall(b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
            sockets.append(s)
        for _ in range(200):  # half-open: headers never finished
            s = socket.create_connection((ingest.host, ingest.port))
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Le")
            sockets.append(s)
        for _ in range(20):  # a body that never ends
            s = socket.create_connection((ingest.host, ingest.port))
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                      b"Content-Length: 1000\r\n\r\nabc")
            sockets.append(s)
        time.sleep(0.5)
        ingest.process.send_signal(signal.SIGTERM)
        start = time.monotonic()
        code = ingest.process.wait(30)
        took = time.monotonic() - start
    finally:
        for s in sockets:
            s.close()
        if ingest.process.poll() is None:
            ingest.process.kill()
    assert code == 0
    assert took < 5, f"exit took {took:.1f}s"


# --- item: a flood of turns waiting for their trajectories ------------------------

@pytest.mark.slow
def test_1000_trajectories_of_100_turns_with_trajectory_spans_last_all_land_and_other_traffic_is_served(db_path):
    ingest = IngestProcess(db_path).start()
    statuses, unrelated = [], []
    try:
        for start in range(0, 1000, 10):  # 10 trajectories' turns a request: 1,000 turns
            body = merged(trajectory_request(k, 100, with_trajectory=False)
                          for k in range(start + 1, start + 11)).SerializeToString()
            statuses.append(post(ingest.host, ingest.port, body)[0])
            if start % 100 == 0:  # unrelated, complete traffic meanwhile
                other = trajectory_request(100_000 + start, 2, spec="other").SerializeToString()
                unrelated.append(post(ingest.host, ingest.port, other)[0])
        for start in range(0, 1000, 100):
            body = merged(trajectory_request(k, 100, with_turns=False)
                          for k in range(start + 1, start + 101)).SerializeToString()
            statuses.append(post(ingest.host, ingest.port, body)[0])
    finally:
        assert ingest.stop() == 0
    assert statuses == [200] * 110
    assert unrelated == [200] * 10
    stored = turns_by_trace(db_path)
    assert sum(1 for k in range(1, 1001) if stored.get(trace_hex(k)) == 100) == 1000
    assert sum(stored.values()) == 100_000 + 20


# --- item: kill -9 under load ---------------------------------------------------

@pytest.mark.slow
def test_every_trajectory_answered_200_survives_repeated_kill_9_under_load(db_path):
    acknowledged: set[int] = set()
    next_trace = [1]
    kills = 5
    for round_ in range(kills):
        ingest = IngestProcess(db_path).start()
        stop = threading.Event()

        def load() -> None:
            # Two requests a trajectory: its turns, then (another request) its span.
            while not stop.is_set():
                k = next_trace[0]
                next_trace[0] += 1
                try:
                    turns = trajectory_request(k, 10, with_trajectory=False).SerializeToString()
                    if post(ingest.host, ingest.port, turns, timeout=10)[0] != 200:
                        continue
                    span = trajectory_request(k, 10, with_turns=False).SerializeToString()
                    if post(ingest.host, ingest.port, span, timeout=10)[0] == 200:
                        acknowledged.add(k)
                except OSError:
                    return  # the receiver is gone

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        ingest.process.send_signal(signal.SIGKILL)
        ingest.process.wait()
        stop.set()
        for t in threads:
            t.join(30)
        ingest.process.stderr.close()
        ingest.log.close()
    assert len(acknowledged) > 20 * kills  # load was real
    # One more start releases anything whose release the kill interrupted.
    IngestProcess(db_path).start().stop()
    stored = turns_by_trace(db_path)
    missing = [k for k in acknowledged if stored.get(trace_hex(k)) != 10]
    assert missing == []


# --- the smaller items ----------------------------------------------------------

def test_a_multi_member_gzip_body_is_read_whole(db_path):
    body = merged(trajectory_request(k, 2) for k in range(1, 5)).SerializeToString()
    half = len(body) // 2
    two_members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    with IngestServer(db_path, port=0) as server:
        status, _ = post(server.host, server.port, two_members,
                         {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 200
    assert turns_by_trace(db_path) == {trace_hex(k): 2 for k in range(1, 5)}


def test_the_bearer_scheme_is_matched_whatever_its_case(db_path):
    body = trajectory_request(1, 1).SerializeToString()
    with IngestServer(db_path, port=0, token="s3cret") as server:
        assert post(server.host, server.port, body, {**PROTOBUF, "Authorization": "bearer s3cret"})[0] == 200
        assert post(server.host, server.port, body, {**PROTOBUF, "Authorization": "BEARER s3cret"})[0] == 200
        assert post(server.host, server.port, body, {**PROTOBUF, "Authorization": "Basic s3cret"})[0] == 401


def test_deeply_nested_json_gets_400_not_500(db_path):
    with IngestServer(db_path, port=0) as server:
        status, answer = post(server.host, server.port, b"[" * 200_000, {"Content-Type": "application/json"})
    assert status == 400 and b"nested too deeply" in answer


def test_a_lone_surrogate_in_otlp_json_costs_a_character_not_the_request(db_path):
    import json

    from ppp_otel.ingest import wire as otlp

    document = json.loads(otlp.request_to_json(trajectory_request(1, 1)))
    for kv in document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]:
        if kv["key"] == "output.value":
            kv["value"]["stringValue"] = "cut mid-emoji \ud83d"
    body = json.dumps(document).encode()  # ensure_ascii: the surrogate travels as \\ud83d
    with IngestServer(db_path, port=0) as server:
        status, _ = post(server.host, server.port, body, {"Content-Type": "application/json"})
        stats = server.stats
    assert status == 200 and stats["repaired_text_in_bodies"] == 1
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT response FROM trajectory_turns").fetchall() == [("cut mid-emoji \ufffd",)]


# --- a store that cannot be used ---------------------------------------------------

def run_ingest(*args: str) -> "subprocess.CompletedProcess":
    import subprocess

    from ingest_process import PPP_OTEL

    # The timeout only catches a receiver that starts when it should not.
    return subprocess.run([PPP_OTEL, "ingest", "--port", "0", "--grpc-port", "off", *args],
                          capture_output=True, text=True, timeout=30)


def test_ingest_refuses_to_start_when_the_databases_directory_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-dir"
    done = run_ingest("--db", str(missing / "x.db"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ppp-otel: error: cannot record to {missing / 'x.db'}: the directory {missing} does not exist "
        "(create it, or choose another --db / PPP_OTEL_DB)"]
    assert not missing.exists()


def test_ingest_refuses_to_start_when_its_postgresql_server_cannot_be_reached():
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = run_ingest("--db", f"postgresql://ppp:secret@127.0.0.1:{port}/ppp")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"ppp-otel: error: cannot ingest into postgresql://ppp:***@127.0.0.1:{port}/ppp: cannot connect"), lines
    assert "secret" not in done.stderr


@pytest.fixture
def ingest_losing_its_directory(tmp_path):
    """A real ``ppp-otel ingest`` whose database's directory is removed after it started."""
    import shutil

    store = tmp_path / "store"
    store.mkdir()
    ingest = IngestProcess(store / "x.db").start()
    ingest.log.close()
    shutil.rmtree(store)
    yield ingest
    if ingest.process.poll() is None:
        ingest.process.kill()
        ingest.process.wait()


def test_a_request_that_cannot_be_made_durable_gets_503_before_its_commit_deadline(ingest_losing_its_directory):
    ingest = ingest_losing_its_directory
    for _ in range(2):  # the one queued when the writes began to fail, and one after
        # Under the receiver's own 30 s deadline: answered, not left to the client's timeout.
        status, body = post(ingest.host, ingest.port, trajectory_request(1, 2).SerializeToString(), timeout=25)
        assert status == 503
    conn = http.client.HTTPConnection(ingest.host, ingest.port, timeout=25)
    try:
        conn.request("POST", "/v1/traces", body=b'{"resourceSpans": []}',
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read().decode()
        assert response.status == 503 and response.getheader("Retry-After") == "1"
        assert "the database cannot be written now" in answer and "does not exist" in answer
    finally:
        conn.close()


def test_sigterm_while_the_database_cannot_be_written_stops_quickly_and_counts_the_lost_records(
        ingest_losing_its_directory):
    import re

    ingest = ingest_losing_its_directory
    assert post(ingest.host, ingest.port, trajectory_request(1, 2).SerializeToString(), timeout=25)[0] == 503
    ingest.process.send_signal(signal.SIGTERM)
    start = time.monotonic()
    err = ingest.process.stderr.read()
    ingest.process.wait(30)
    took = time.monotonic() - start
    assert took < 10, f"exit took {took:.1f}s"
    assert "Traceback" not in err and "Exception" not in err and "ERROR: " not in err, err
    # The request answered 503 was queued and never written: its sender keeps it and retries.
    assert re.search(r"^lost_at_shutdown\s+3$", err, re.MULTILINE), err


def test_ingest_exits_1_when_records_it_queued_were_lost_at_shutdown(ingest_losing_its_directory):
    ingest = ingest_losing_its_directory
    assert post(ingest.host, ingest.port, trajectory_request(1, 2).SerializeToString(), timeout=25)[0] == 503
    ingest.process.send_signal(signal.SIGTERM)
    err = ingest.process.stderr.read()
    # A supervisor tells a stop that lost records from a clean one (exit 0) by the status alone.
    assert ingest.process.wait(30) == 1
    assert "ppp-otel ingest: 3 records queued were not written before it stopped" in err, err


def test_ingest_refuses_to_start_on_a_postgresql_store_its_role_may_not_create(postgres_server):
    import uuid

    import psycopg

    role, schema = f"r_{uuid.uuid4().hex[:10]}", f"s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'CREATE SCHEMA "{schema}"')  # owned by postgres: the role may use it, not create in it
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    url = f"postgresql://{role}@127.0.0.1:{postgres_server.port}/postgres?options=-csearch_path%3D{schema}"
    done = run_ingest("--db", url)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ppp-otel: error: cannot ingest into {url}: "), lines
    assert lines[0].endswith(f"permission denied for schema {schema}")  # the server's message, no SQL after it
