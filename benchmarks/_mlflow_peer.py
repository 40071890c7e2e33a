"""MLflow Tracing on a SQLite store, driven round by round by bench_peers.py.

Runs in its own virtualenv (MLflow's dependencies do not share one with
Phoenix's), so it speaks over stdin/stdout: each input line ``<round> <turns>``
is answered by one JSON line. Not run on its own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time


def main() -> int:
    db = sys.argv[1]
    import mlflow

    # Its own warnings (a trace polled before it is written) are expected while polling.
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath(db)}")
    mlflow.set_experiment("ppp-otel-bench")
    prompt = "The integration test for the payment webhook fails on CI but passes locally; fix it."
    print(json.dumps({"ready": True, "version": mlflow.__version__}), flush=True)

    for line in sys.stdin:
        k, n = (int(x) for x in line.split())
        pc, tt, pt = time.perf_counter, time.thread_time, time.process_time
        p0, w0, c0 = pt(), pc(), tt()
        with mlflow.start_span("trajectory", span_type="AGENT") as root:
            root.set_inputs({"spec": "bench-spec"})
            for i in range(n):
                with mlflow.start_span("ppp.turn", span_type="LLM") as span:
                    span.set_inputs({"prompt": f"{prompt} (request {k}.{i})"})
                    span.set_outputs({"response": f"Done, change {k}.{i} is in.", "token_count": 120 + (i & 63)})
        wall, cpu = pc() - w0, tt() - c0
        mlflow.flush_trace_async_logging()
        process = pt() - p0

        # Time until queryable: a trajectory of 10 turns, from its end until the store returns it whole.
        with mlflow.start_span("trajectory", span_type="AGENT") as root:
            for i in range(10):
                with mlflow.start_span("ppp.turn", span_type="LLM") as span:
                    span.set_inputs({"prompt": f"visible {k}.{i}"})
                    span.set_outputs({"response": "ok"})
        ended = pc()
        visible = None
        while pc() - ended < 30:
            try:
                trace = mlflow.get_trace(root.trace_id)
            except Exception:
                trace = None
            if trace is not None and len(trace.data.spans) == 11:
                visible = pc() - ended
                break
            time.sleep(0.001)
        spans = n + 1
        print(json.dumps({"wall_per_span": wall / spans, "cpu_per_span": cpu / spans,
                          "process_per_span": process / spans, "visible_s": visible}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
