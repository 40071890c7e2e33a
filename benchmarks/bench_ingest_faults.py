"""Ingest under load and faults: requests/s held, kill -9s survived, acknowledged against stored.

    python benchmarks/bench_ingest_faults.py [--kills N] [--seconds S] [--clients C] [--json]

Runs ``ppp-otel ingest`` as a real process; C clients post trajectories as two
requests each (the turns, then the trajectory span, as OTLP exporters send
them); after S seconds the process is killed with SIGKILL and started again on
the same database, N times. Then every trajectory whose span was answered 200
is looked up: acknowledged, stored, missing. Also: with 1,000 trajectories of
100 turns waiting for their trajectory spans, whether unrelated traffic is
still served (no 503).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from pathlib import Path
import tempfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ingest_process import IngestProcess, trace_hex, trajectory_request, turns_by_trace  # noqa: E402


def _post(conn: http.client.HTTPConnection, body: bytes) -> int:
    conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
    response = conn.getresponse()
    response.read()
    return response.status


def kill_rounds(db: Path, kills: int, seconds: float, clients: int, turns: int = 10) -> dict:
    acknowledged: set[int] = set()
    counter = iter(range(1, 10**9))
    lock = threading.Lock()
    requests = [0]
    busy_s = 0.0
    for _ in range(kills):
        ingest = IngestProcess(db).start()
        stop = threading.Event()

        def client() -> None:
            conn = http.client.HTTPConnection(ingest.host, ingest.port, timeout=10)
            while not stop.is_set():
                with lock:
                    k = next(counter)
                try:
                    if _post(conn, trajectory_request(k, turns, with_trajectory=False).SerializeToString()) != 200:
                        continue
                    status = _post(conn, trajectory_request(k, turns, with_turns=False).SerializeToString())
                    with lock:
                        requests[0] += 2
                        if status == 200:
                            acknowledged.add(k)
                except (OSError, http.client.HTTPException):
                    return

        threads = [threading.Thread(target=client) for _ in range(clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(seconds)
        ingest.process.send_signal(signal.SIGKILL)
        ingest.process.wait()
        busy_s += time.monotonic() - start
        stop.set()
        for t in threads:
            t.join(30)
        ingest.process.stderr.close()
        ingest.log.close()
    IngestProcess(db).start().stop()  # a last start releases what a kill interrupted
    stored = turns_by_trace(db)
    missing = sum(1 for k in acknowledged if stored.get(trace_hex(k)) != turns)
    return {"kills": kills, "requests_per_s": round(requests[0] / busy_s), "acknowledged": len(acknowledged),
            "stored": len(acknowledged) - missing, "missing": missing}


def flood(db: Path) -> dict:
    ingest = IngestProcess(db).start()
    conn = http.client.HTTPConnection(ingest.host, ingest.port, timeout=60)
    statuses, unrelated = [], []
    start = time.monotonic()
    for first in range(0, 1000, 10):
        body = trajectory_request(first + 1, 100, with_trajectory=False)
        for k in range(first + 2, first + 11):
            body.MergeFrom(trajectory_request(k, 100, with_trajectory=False))
        statuses.append(_post(conn, body.SerializeToString()))
        unrelated.append(_post(conn, trajectory_request(10**6 + first, 2, spec="other").SerializeToString()))
    for first in range(0, 1000, 100):
        body = trajectory_request(first + 1, 100, with_turns=False)
        for k in range(first + 2, first + 101):
            body.MergeFrom(trajectory_request(k, 100, with_turns=False))
        statuses.append(_post(conn, body.SerializeToString()))
    took = time.monotonic() - start
    conn.close()
    ingest.stop()
    stored = turns_by_trace(db)
    return {"waiting_turns": 100_000, "answers_200": statuses.count(200), "requests": len(statuses),
            "unrelated_200": unrelated.count(200), "unrelated": len(unrelated),
            "trajectories_stored_whole": sum(1 for k in range(1, 1001) if stored.get(trace_hex(k)) == 100),
            "turns_per_s": round(100_000 / took)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"kill_9": kill_rounds(Path(tmp) / "kills.db", args.kills, args.seconds, args.clients),
                  "flood": flood(Path(tmp) / "flood.db")}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        k, f = result["kill_9"], result["flood"]
        print(f"kill -9 x{k['kills']} under load ({k['requests_per_s']} requests/s): "
              f"{k['acknowledged']} trajectories acknowledged, {k['stored']} stored, {k['missing']} missing")
        print(f"flood of {f['waiting_turns']:,} waiting turns: {f['answers_200']}/{f['requests']} answered 200, "
              f"unrelated {f['unrelated_200']}/{f['unrelated']} answered 200, "
              f"{f['trajectories_stored_whole']}/1000 trajectories stored whole ({f['turns_per_s']:,} turns/s)")
    ok = result["kill_9"]["missing"] == 0 and result["flood"]["trajectories_stored_whole"] == 1000
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
