"""PostgreSQL benchmarks, each against a baseline measured in the same run.

    python benchmarks/bench_postgres.py            # full run
    python benchmarks/bench_postgres.py --quick    # a short run
    python benchmarks/bench_postgres.py --json     # the report rows as JSON

A PostgreSQL server is started for the run (tests/postgres_server.py: Debian's
package, a temporary cluster, fsync on, ``synchronous_commit=off`` as SQLite's
WAL with ``synchronous=NORMAL``). Rounds are interleaved, medians reported.

- pg_writer: turns (each with a question) and their trajectories written by
  :class:`ppp_otel.storage.postgres.writer.TrajectoryWriter`, one transaction
  per batch of 1,000 records, against raw psycopg ``executemany`` of the same
  rows at the same batch size (plain INSERTs with the ids given, no upsert, no
  lookups) and against ``COPY`` of the same rows. Target: >= 0.5x executemany.
- pg_ingest_N: spans/s through N ``ppp-otel ingest`` processes writing one
  PostgreSQL store, bodies of 1,000 spans (whole trajectories) spread over the
  replicas as the loadbalancing exporter spreads trace ids, one client per
  replica, until every turn is committed; against one ``ppp-otel ingest`` on
  SQLite fed the same bodies.
- scoring and consensus at 100,000 trajectories (10 agents a spec) on both
  backends: ``score_spec`` and ``consensus(store=False)`` of one spec, against
  the scoring statement run bare on the same connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _rows import Progress, row, say  # noqa: E402
from ppp_otel.model import Question  # noqa: E402
from ppp_otel.records import TrajectoryRecord, TurnRecord  # noqa: E402
import backends  # noqa: E402  (tests/backends.py: raw connections on either backend)

QUICK_ENV = "PPP_OTEL_BENCH_QUICK"
BATCH = 1000


# --- the writer ----------------------------------------------------------------------

def _records(trajectories: int, turns: int, offset: int = 0) -> list:
    out = []
    for i in range(offset, offset + trajectories):
        t = TrajectoryRecord(f"{i + 1:032x}", f"{i + 1:016x}", f"spec-{i % 100}", f"agent-{i % 10}",
                             run_id="bench", started_at="2025-01-01T00:00:00.000Z")
        out.append(t)
        for k in range(1, turns + 1):
            out.append(TurnRecord(t.trace_id, f"{i + 1:08x}{k:08x}", t.key, k, f"prompt {i}/{k}",
                                  f"response {i}/{k}: which file?", token_count=40, latency_ms=12.5,
                                  timestamp="2025-01-01T00:00:01.000Z",
                                  questions=[Question("Which file?", "low")], extract_questions=False))
    return out


def _batches(records: list) -> list[list]:
    return [records[i:i + BATCH] for i in range(0, len(records), BATCH)]


def _writer_run(url: str, batches: list[list]) -> float:
    from ppp_otel.storage.postgres.writer import TrajectoryWriter

    conn = backends.connect(url)
    writer = TrajectoryWriter(conn)
    start = time.perf_counter()
    for batch in batches:
        writer.write(batch)
    elapsed = time.perf_counter() - start
    conn.close()
    return sum(len(b) for b in batches) / elapsed


def _raw_rows(batch: list, ids: dict) -> tuple[list, list, list]:
    trajectories, turns, questions = [], [], []
    for r in batch:
        if isinstance(r, TrajectoryRecord):
            ids[r.key] = len(ids) + 1
            trajectories.append((ids[r.key], r.spec_id, r.agent_name, r.run_id, r.started_at, r.trace_id, r.span_id))
        else:
            ids[(r.trace_id, r.span_id)] = len(ids) + 1
            turn_id = ids[(r.trace_id, r.span_id)]
            turns.append((turn_id, ids[r.trajectory], r.turn_number, r.prompt, r.response, r.token_count,
                          r.latency_ms, r.timestamp, r.trace_id, r.span_id))
            questions += [(turn_id, q.text, q.effort, "explicit") for q in r.questions]
    return trajectories, turns, questions


_T_COLS = "id, spec_id, agent_name, run_id, created_at, trace_id, span_id"
_U_COLS = "id, trajectory_id, turn_number, prompt, response, token_count, latency_ms, timestamp, trace_id, span_id"
_Q_COLS = "turn_id, question_text, effort_level, source"


def _raw_run(url: str, batches: list[list], copy: bool) -> float:
    import psycopg

    backends.connect(url).close()
    ids: dict = {}
    prepared = [_raw_rows(b, ids) for b in batches]  # outside the timing: the writer's row building is inside its own
    conn = psycopg.connect(url, autocommit=True)
    start = time.perf_counter()
    for trajectories, turns, questions in prepared:
        with conn.transaction(), conn.cursor() as cur:
            for table, cols, rows in (("trajectories", _T_COLS, trajectories),
                                      ("trajectory_turns", _U_COLS, turns),
                                      ("trajectory_questions", _Q_COLS, questions)):
                if not rows:
                    continue
                if copy:
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as c:
                        for r in rows:
                            c.write_row(r)
                else:
                    marks = ", ".join(["%s"] * len(rows[0]))
                    cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return sum(len(b) for b in batches) / elapsed


def bench_writer(progress: Progress, quick: bool, server) -> list[dict]:
    trajectories, turns = (400, 9) if quick else (2000, 9)
    rounds = 3 if quick else 5
    batches = _batches(_records(trajectories, turns))
    results = {"writer": [], "executemany": [], "copy": []}
    for r in range(rounds):
        results["writer"].append(_writer_run(server.new_schema_url(), batches))
        results["executemany"].append(_raw_run(server.new_schema_url(), batches, copy=False))
        results["copy"].append(_raw_run(server.new_schema_url(), batches, copy=True))
        say(progress, f"writer round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:,.0f} records/s" for k, v in results.items()))
    writer, many, copy = (statistics.median(results[k]) for k in ("writer", "executemany", "copy"))
    records = sum(len(b) for b in batches)
    return [
        row("pg_writer", round(writer), "records/s", baseline_name=f"raw psycopg executemany, batch {BATCH}",
            baseline_value=round(many), ratio=round(writer / many, 3), target=">= 0.5x executemany",
            ok=writer / many >= 0.5, records=records, rounds=rounds,
            detail=f"{records:,} records (trajectories, turns with a question each) in batches of {BATCH}, one "
                   "transaction a batch, into a fresh schema each round; the raw baselines insert the same rows "
                   "with their ids given (no upsert, no id lookups). The writer sends a batch of numbered "
                   "turns as one INSERT ... SELECT FROM unnest(arrays) per table."),
        row("pg_writer_vs_copy", round(writer), "records/s", baseline_name=f"raw psycopg COPY, batch {BATCH}",
            baseline_value=round(copy), ratio=round(writer / copy, 3), target="(reported)", ok=None,
            records=records, rounds=rounds),
    ]


# --- ingest replicas ---------------------------------------------------------------------

def _bodies(trajectories: int) -> tuple[list[bytes], int]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from bench_ingest import TURNS, _recorded

    spans = _recorded(trajectories)
    per_body = 1000  # 100 whole trajectories of 10 spans
    return ([encode_spans(spans[i:i + per_body]).SerializeToString() for i in range(0, len(spans), per_body)],
            trajectories * TURNS)


def _start_replica(db: str) -> tuple[subprocess.Popen, str, int]:
    command = [os.path.join(os.path.dirname(sys.executable), "ppp-otel"), "ingest", "--db", db, "--port", "0",
               "--grpc-port", "off"]
    env = {k: v for k, v in os.environ.items() if k not in ("PPP_OTEL_DB", "PPP_OTEL_CONFIG")}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stderr.readline()
    if "listening on" not in line:
        raise RuntimeError(f"ppp-otel ingest did not start: {line}")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep its pipe drained
    url = line.split("listening on http://", 1)[1].split("/v1/traces", 1)[0]
    host, port = url.rsplit(":", 1)
    return process, host, int(port)


def _post_all(host: str, port: int, bodies: list[bytes]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    for body in bodies:
        for attempt in range(400):
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            if response.status != 503:
                break
            time.sleep(0.01 * min(attempt + 1, 20))
        if response.status != 200:
            raise RuntimeError(f"ingest answered {response.status}")
    conn.close()


def _turns_in(db: str) -> int:
    try:
        if backends.is_postgres(db):
            import psycopg

            with psycopg.connect(db, autocommit=True) as conn:
                return conn.execute("SELECT count(*) FROM trajectory_turns").fetchone()[0]
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            return conn.execute("SELECT count(*) FROM trajectory_turns").fetchone()[0]
    except Exception:
        return 0


def _ingest_run(db: str, replicas: int, bodies: list[bytes], turns: int) -> float:
    started = [_start_replica(db) for _ in range(replicas)]
    try:
        shares = [bodies[i::replicas] for i in range(replicas)]
        spans = sum(len(b) for b in bodies)  # bytes; replaced below by the span count
        start = time.perf_counter()
        clients = [threading.Thread(target=_post_all, args=(host, port, share))
                   for (_, host, port), share in zip(started, shares)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        while _turns_in(db) < turns:
            if time.perf_counter() - start > 600:
                raise RuntimeError("ingest did not write every turn in 600 s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
    finally:
        for process, _, _ in started:
            process.terminate()
        for process, _, _ in started:
            process.wait(60)
    del spans
    return turns * 10 / 9 / elapsed  # spans: 9 turns and their trajectory span


def bench_ingest(progress: Progress, quick: bool, server, workdir: Path) -> list[dict]:
    trajectories = 1000 if quick else 4000
    rounds = 1 if quick else 3
    bodies, turns = _bodies(trajectories)
    figures: dict[str, list[float]] = {"sqlite_1": [], "pg_1": [], "pg_2": [], "pg_4": []}
    for r in range(rounds):
        figures["sqlite_1"].append(_ingest_run(str(workdir / f"ingest-{r}.db"), 1, bodies, turns))
        for n in (1, 2, 4):
            figures[f"pg_{n}"].append(_ingest_run(server.new_schema_url(), n, bodies, turns))
        say(progress, f"ingest round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:,.0f} spans/s" for k, v in figures.items()))
    base = statistics.median(figures["sqlite_1"])
    out = []
    for n in (1, 2, 4):
        value = statistics.median(figures[f"pg_{n}"])
        out.append(row(f"pg_ingest_{n}_replica{'s' if n > 1 else ''}", round(value), "spans/s",
                       baseline_name="1 ppp-otel ingest on SQLite, same bodies", baseline_value=round(base),
                       ratio=round(value / base, 3), target="(reported; 2 cores)", ok=None,
                       spans=trajectories * 10, rounds=rounds, cpus=os.cpu_count(),
                       detail=f"{n} `ppp-otel ingest` process(es) on one PostgreSQL server, all on this "
                              f"{os.cpu_count()}-core machine with the clients and the server: each replica "
                              "decodes, assembles and analyses its spans in Python (one interpreter each), the "
                              "server does the inserts, and the clients post; with 2 cores, more than two "
                              "replicas only share the same CPU, so this shows replicas working side by side "
                              "on one store (each span stored once), not what separate hosts would reach."))
    return out


# --- scoring and consensus at 100,000 trajectories ------------------------------------------

def _load_sqlite(path: str, trajectories: int) -> None:
    from scoring_data import add_trajectory  # noqa: F401  (same data shape as the tests)

    records = []
    for i in range(trajectories):
        t = TrajectoryRecord(f"{i + 1:032x}", f"{i + 1:016x}", f"spec-{i // 10}", f"agent-{i % 10}",
                             technical_score=(i % 10) / 10, started_at="2025-01-01T00:00:00.000Z")
        records.append(t)
        efforts = ("low", "medium", "high")
        records.append(TurnRecord(t.trace_id, f"{i + 1:08x}{1:08x}", t.key, 1, "p", "r",
                                  questions=[Question("q?", efforts[i % 3])], extract_questions=False))
    conn = backends.connect(path)
    backends.write_all(conn, records, batch_size=5000)
    conn.close()


def _copy_into_postgres(sqlite_path: str, url: str) -> None:
    """The same rows, ids kept, by COPY (a bench loader; `ppp-otel copy` is the user's way)."""
    import psycopg

    backends.connect(url).close()
    lite = sqlite3.connect(sqlite_path)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        for table in ("trajectories", "trajectory_turns", "trajectory_questions", "trajectory_violations"):
            cols = [r[1] for r in lite.execute(f"PRAGMA table_info({table})")]
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as c:
                for r in lite.execute(f"SELECT {', '.join(cols)} FROM {table}"):
                    c.write_row(r)
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))")
        cur.execute("ANALYZE")
    lite.close()


def _interleaved_ns(calls: dict, repeats: int) -> dict[str, list[int]]:
    """Each call's times, the calls taken in turn round after round (the order rotated),
    so that a machine whose speed changes from one second to the next slows each alike
    and a ratio of two of them is taken round by round."""
    for call in calls.values():
        for _ in range(5):
            call()
    names = list(calls)
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter_ns()
            calls[name]()
            samples[name].append(time.perf_counter_ns() - t)
    return samples


def bench_scoring(progress: Progress, quick: bool, server, workdir: Path) -> list[dict]:
    from ppp_otel.scoring import rewards
    from ppp_otel.scoring.consensus import Weights, consensus
    from ppp_otel.storage.postgres.scoring import score_sql
    from ppp_otel.storage.sqlite.scoring import SQL_SCORE_SPEC

    PG_SCORE_SPEC = score_sql("spec_id = %s")

    trajectories = 100_000
    repeats = 50 if quick else 200
    sqlite_path = str(workdir / "scoring-100k.db")
    say(progress, f"loading {trajectories:,} trajectories into SQLite")
    _load_sqlite(sqlite_path, trajectories)
    url = server.new_schema_url()
    say(progress, "copying them into PostgreSQL")
    _copy_into_postgres(sqlite_path, url)
    spec = f"spec-{trajectories // 20}"
    weights = Weights(0.7, 0.3)
    figures = {}
    for name, db in (("sqlite", sqlite_path), ("postgresql", url)):
        conn = backends.connect(db)
        bare_sql = PG_SCORE_SPEC if name == "postgresql" else SQL_SCORE_SPEC
        samples = _interleaved_ns({
            "score": lambda: rewards.score_spec(conn, spec),
            "consensus": lambda: consensus(conn, spec, weights=weights, store=False),
            "bare": lambda: conn.execute(bare_sql, (spec,)).fetchall(),
        }, repeats)
        figures[name] = {k: statistics.median(v) / 1e6 for k, v in samples.items()}
        figures[name]["score_ratio"] = statistics.median(
            a / b for a, b in zip(samples["score"], samples["bare"]))
        conn.close()
        say(progress, f"{name}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in figures[name].items()))
    out = []
    for name in ("sqlite", "postgresql"):
        f = figures[name]
        out.append(row(f"{name}_score_spec_100k", round(f["score"], 4), "ms",
                       baseline_name=f"the scoring SQL bare on {name}", baseline_value=round(f["bare"], 4),
                       ratio=round(f["score_ratio"], 3), target="<= 1.3x bare SQL",
                       ok=f["score_ratio"] <= 1.3, trajectories=trajectories,
                       detail=f"{trajectories:,} trajectories (10 agents a spec, a turn and a question each); "
                              f"score_spec of one spec on a warm connection against its scoring statement run "
                              f"bare (fetchall) on the same connection, the two (and the consensus) called in "
                              f"turn for {repeats} rounds; ratio = median of the rounds' ratios; PostgreSQL "
                              "loaded by COPY from the SQLite file, then ANALYZE."))
        out.append(row(f"{name}_consensus_10_agents_100k", round(f["consensus"], 4), "ms",
                       baseline_name=f"the scoring SQL bare on {name}", baseline_value=round(f["bare"], 4),
                       ratio=round(f["consensus"] / f["bare"], 3), target="< 5 ms",
                       ok=f["consensus"] < 5, trajectories=trajectories))
    pg, lite = figures["postgresql"], figures["sqlite"]
    out.append(row("postgresql_vs_sqlite_consensus_100k", round(pg["consensus"], 4), "ms",
                   baseline_name="the same consensus on SQLite", baseline_value=round(lite["consensus"], 4),
                   ratio=round(pg["consensus"] / lite["consensus"], 3), target="(reported)", ok=None))
    return out


# --- the report's entry point -----------------------------------------------------------------

def run(progress: Progress = None, quick: bool = False) -> list[dict]:
    from postgres_server import start_server

    quick = quick or bool(os.environ.get(QUICK_ENV))
    try:
        server = start_server(durable=True)
    except RuntimeError as exc:
        return [row("pg_writer", None, "records/s", target=f"skipped: {exc}", ok=None)]
    try:
        with tempfile.TemporaryDirectory(prefix="ppp-bench-pg-") as tmp:
            workdir = Path(tmp)
            rows = bench_writer(progress, quick, server)
            rows += bench_ingest(progress, quick, server, workdir)
            rows += bench_scoring(progress, quick, server, workdir)
            return rows
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(lambda m: print(m, file=sys.stderr, flush=True), quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:40} {r['value']!s:>12} {r['unit']:10} ratio {r['ratio']} vs {r['baseline_name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
