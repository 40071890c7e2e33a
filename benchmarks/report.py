"""Run every benchmark, print what was measured and which targets it misses.

    python benchmarks/report.py                  # everything, full size; prints the table
    python benchmarks/report.py --write          # ... and writes BENCHMARKS.md at the repository root
    python benchmarks/report.py --quick          # a short run
    python benchmarks/report.py --only recording # one module (bench_recording.py); comma-separated
    python benchmarks/report.py --json           # the rows as JSON on stdout instead of the table

The tracked BENCHMARKS.md changes only with ``--write`` (or ``--output``), so
a trial run never replaces the published figures.

Each ``benchmarks/bench_*.py`` module found is imported and its
``run(progress)`` called; it returns rows {"name", "value", "unit",
"baseline_name", "baseline_value", "ratio", "target", "ok"}, optionally "detail"
(how it was measured) and "why" (printed when its target is missed). A module that fails
to import or to run is skipped with a note in the report. The held-out
accuracy of ``benchmarks/effort_accuracy.py`` is added as one more row.
Progress goes to stderr while it runs; the recorder's own warnings (a full
queue in the tight-loop benchmark, say) are counted in the rows, not logged
line by line.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.util
import inspect
import json
import logging
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

QUICK_ENV = "PPP_OTEL_BENCH_QUICK"
EFFORT_MODULE = "effort_accuracy"
EFFORT_TARGET = 0.90  # issue 4: 90% or better on questions not tuned on
COLUMNS = ("benchmark", "value", "unit", "baseline", "baseline value", "ratio", "target", "ok")
ROW_KEYS = ("name", "value", "unit", "baseline_name", "baseline_value", "ratio", "target", "ok")


class Progress:
    """Writes '[elapsed] [k/n module] message' lines to stderr."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.label = ""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        message = " ".join(str(a) for a in args)
        if kwargs:
            message += " " + " ".join(f"{k}={v}" for k, v in kwargs.items())
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:7.1f}s] [{self.label}] {message}", file=sys.stderr, flush=True)


def short_name(stem: str) -> str:
    return stem[len("bench_"):] if stem.startswith("bench_") else stem


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"ppp_benchmarks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_run(run, progress: Progress, quick: bool) -> list[dict]:
    # Every module runs in this one process: what earlier modules left alive (a
    # million-turn stream, MLflow) is frozen out of the collector's scans, so that
    # each module's figures are those of a fresh process, as a user's would be.
    gc.collect()
    gc.freeze()
    try:
        params = inspect.signature(run).parameters
    except (TypeError, ValueError):
        params = {}
    if not params:
        return run()
    kwargs = {"quick": quick} if "quick" in params else {}
    return run(progress, **kwargs)


def normalize(rows: Any, module: str) -> list[dict]:
    if isinstance(rows, dict):
        rows = [rows]
    out = []
    for r in rows or []:
        if not isinstance(r, dict):
            raise TypeError(f"{module}: run() returned a {type(r).__name__}, not a dict row")
        fixed = {key: r.get(key) for key in ROW_KEYS}
        fixed["name"] = fixed["name"] or "(unnamed)"
        fixed["module"] = module
        for extra in ("detail", "why"):
            if r.get(extra):
                fixed[extra] = r[extra]
        out.append(fixed)
    return out


# ------------------------------------------------------------ effort accuracy

def effort_rows(progress: Progress, quick: bool) -> list[dict]:
    path = HERE / f"{EFFORT_MODULE}.py"
    module = load_module(path)
    if hasattr(module, "run"):
        return normalize(call_run(module.run, progress, quick), EFFORT_MODULE)
    rows = []
    # The paper sets first (labelled by the paper's definitions before the rules
    # were rewritten for them, and never tuned on): they are the honest figures.
    for split, what in (("paper", "paper-defined coding/search set, never tuned on"),
                        ("paper2", "second paper-defined set, never tuned on"),
                        ("independent2", "older independent set, relabelled (tuning data)"),
                        ("heldout", "held-out split, relabelled (tuning data)")):
        progress(f"no run(): calling it with --split {split} --json")
        done = subprocess.run(
            [sys.executable, str(path), "--split", split, "--json", "--earlier"],
            capture_output=True, text=True, timeout=600, cwd=str(ROOT),
        )
        if done.returncode != 0:
            raise RuntimeError(f"exit code {done.returncode}: {done.stderr.strip()[-500:]}")
        result = json.loads(done.stdout)[split]
        accuracy = result["accuracy"]
        # Baseline from the same output: always answering the most common label.
        confusion = result.get("confusion") or {}
        counts = {level: sum(row.values()) for level, row in confusion.items()}
        majority = max(counts, key=counts.get) if counts else None
        baseline = counts[majority] / result["n"] if majority and result["n"] else None
        earlier = result.get("earlier_rules_accuracy")
        if earlier:
            baseline_name, baseline = "the earlier rules (before the paper's definitions)", earlier
        else:
            baseline_name = f"always '{majority}' (majority label)" if majority else None
        rows.append({
            "name": f"effort classifier accuracy, {what}",
            "value": round(accuracy, 3),
            "unit": "fraction",
            "baseline_name": baseline_name,
            "baseline_value": round(baseline, 3) if baseline is not None else None,
            "ratio": round(accuracy / baseline, 3) if baseline else None,
            "target": f">= {EFFORT_TARGET:.2f}",
            "ok": accuracy >= EFFORT_TARGET,
            "detail": f"n={result['n']} questions ({split}); "
                      f"`python benchmarks/effort_accuracy.py --split {split} --errors`; "
                      f"{result.get('us_per_question', 0):.1f} us/question; confusion (true -> predicted) "
                      + json.dumps(confusion),
        })
    return normalize(rows, EFFORT_MODULE)


# ----------------------------------------------------------------- rendering

def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:,.1f}"
        return f"{value:.3g}" if abs(value) < 0.01 and value else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from ppp_otel import __version__ as version
    except Exception:  # pragma: no cover - the report still says what it can
        version = "unknown"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "ppp_otel": version,
    }


def render(meta: dict, rows: list[dict], notes: list[str]) -> str:
    m = meta["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated {meta['date']} by `{meta['command']}`"
        + (" (quick run: smaller sizes, fewer repeats)" if meta["quick"] else "") + ".",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['platform']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}, ppp-otel {m['ppp_otel']}. Took {meta['seconds']:.0f} s."
        + (f" Load average {meta['load'][0]:.1f} at the start, {meta['load'][1]:.1f} at the end: other work "
           "shared the cores, which is why rounds are interleaved and min and median both shown."
           if meta.get("load") else ""),
        "",
        "Each figure is measured beside its baseline in the same run; the ratio is figure / baseline.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---"] * len(COLUMNS)) + "|",
    ]
    for r in rows:
        name = f"{short_name(r['module'])}: {r['name']}"
        cells = [name, fmt(r["value"]), r["unit"] or "", fmt(r["baseline_name"]), fmt(r["baseline_value"]),
                 fmt(r["ratio"]), fmt(r["target"]), fmt(r["ok"])]
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c.replace("|", "\\|")
                                       for c in cells) + " |")
    details = [r for r in rows if r.get("detail")]
    if details:
        lines += ["", "## How each figure was measured", ""]
        lines += [f"- {short_name(r['module'])}: {r['name']}: {r['detail']}" for r in details]
    explained = [r for r in rows if r["ok"] is False and r.get("why")]
    if explained:
        lines += ["", "## Why the missed targets are missed", ""]
        lines += [f"- {short_name(r['module'])}: {r['name']}: {r['why']}" for r in explained]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in notes]
    missed = [r for r in rows if r["ok"] is False]
    lines += ["", f"{len(rows)} rows, {len(missed)} target(s) missed"
              + (": " + "; ".join(f"{short_name(r['module'])}: {r['name']}" for r in missed) if missed else "")
              + "."]
    return "\n".join(lines) + "\n"


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def missed_summary(rows: list[dict], notes: list[str]) -> str:
    """What a person reads last: each missed target with its figure and baseline."""
    missed = [r for r in rows if r["ok"] is False]
    if not missed and not notes:
        return f"all {len(rows)} rows meet their targets"
    lines = [f"{len(missed)} of {len(rows)} rows miss their target:" if missed else "every target met"]
    for r in missed:
        lines.append(f"  MISSED {short_name(r['module'])}: {r['name']}: {fmt(r['value'])} {r['unit'] or ''} "
                     f"(baseline {fmt(r['baseline_name'])}: {fmt(r['baseline_value'])}; ratio {fmt(r['ratio'])}; "
                     f"target {fmt(r['target'])})")
    lines += [f"  NOTE {note}" for note in notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    # Counted in the rows instead: a warning per dropped record would bury the report.
    recorder_log = logging.getLogger("ppp_otel")
    level = recorder_log.level
    recorder_log.setLevel(logging.ERROR)
    try:
        return _main(argv)
    finally:
        recorder_log.setLevel(level)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: smaller sizes, fewer repeats")
    parser.add_argument("--only", metavar="NAME",
                        help="run only these modules (comma-separated; 'recording' or 'bench_recording', "
                             f"'{EFFORT_MODULE}')")
    parser.add_argument("--json", action="store_true", help="also print {meta, rows, notes} as JSON on stdout")
    parser.add_argument("--write", action="store_true",
                        help="write the report to BENCHMARKS.md at the repo root (or --output)")
    parser.add_argument("--output", type=Path, help="write the report to this file (implies --write)")
    parser.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)  # the default now
    args = parser.parse_args(argv)
    output = args.output or (ROOT / "BENCHMARKS.md" if args.write else None)

    wanted = None
    if args.only:
        wanted = {short_name(n.strip().removesuffix(".py")) for n in args.only.split(",") if n.strip()}
    if args.quick:
        os.environ[QUICK_ENV] = "1"

    progress = Progress()
    started = time.perf_counter()
    load_at_start = _load()
    rows: list[dict] = []
    notes: list[str] = []
    modules = discover()
    jobs: list[tuple[str, Path | None]] = [(p.stem, p) for p in modules]
    if (HERE / f"{EFFORT_MODULE}.py").exists():
        jobs.append((EFFORT_MODULE, None))
    if wanted is not None:
        unknown = wanted - {short_name(stem) for stem, _ in jobs}
        if unknown:
            parser.error(f"no benchmark named {', '.join(sorted(unknown))}; "
                         f"found {', '.join(short_name(s) for s, _ in jobs)}")
        jobs = [job for job in jobs if short_name(job[0]) in wanted]

    for k, (stem, path) in enumerate(jobs, 1):
        progress.label = f"{k}/{len(jobs)} {short_name(stem)}"
        progress("starting")
        t0 = time.perf_counter()
        try:
            if path is None:
                got = effort_rows(progress, args.quick)
            else:
                try:
                    module = load_module(path)
                except Exception as exc:
                    notes.append(f"`{path.name}` skipped: it failed to import ({type(exc).__name__}: {exc}).")
                    progress(f"skipped: import failed: {type(exc).__name__}: {exc}")
                    continue
                if not callable(getattr(module, "run", None)):
                    notes.append(f"`{path.name}` skipped: it has no run(progress) function.")
                    progress("skipped: no run()")
                    continue
                got = normalize(call_run(module.run, progress, args.quick), stem)
        except Exception as exc:
            notes.append(f"`{stem}` failed while running ({type(exc).__name__}: {exc}); its rows are missing.")
            progress(f"FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            continue
        rows.extend(got)
        missed = sum(1 for r in got if r["ok"] is False)
        progress(f"done in {time.perf_counter() - t0:.1f}s: {len(got)} rows, {missed} target(s) missed")

    command = "python benchmarks/report.py" + ("" if argv is None and len(sys.argv) <= 1 else
                                               " " + shlex.join(sys.argv[1:] if argv is None else argv))
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "quick": args.quick,
        "machine": machine(),
        "seconds": time.perf_counter() - started,
        "load": (load_at_start, _load()) if load_at_start is not None else None,
    }
    text = render(meta, rows, notes)
    if output is not None:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
        progress.label = "report"
        progress(f"wrote {output}")
    if args.json:
        json.dump({"meta": meta, "rows": rows, "notes": notes}, sys.stdout, indent=2, default=str)
        print()
    else:
        print(text, end="")
    print(missed_summary(rows, notes), file=sys.stderr)
    return 0 if all(r["ok"] is not False for r in rows) and not notes else 1


if __name__ == "__main__":
    raise SystemExit(main())
