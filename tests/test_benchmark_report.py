"""benchmarks/report.py: discovery, skipped modules, the generated table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parent.parent / "benchmarks" / "report.py"


@pytest.fixture
def report():
    spec = importlib.util.spec_from_file_location("ppp_benchmark_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FINE = '''
def run(progress=None, quick=None):
    progress("step one")
    return [{"name": "latency", "value": 1.5, "unit": "ms", "baseline_name": "nothing",
             "baseline_value": 1.0, "ratio": 1.5, "target": "< 2 ms", "ok": True,
             "detail": "quick" if quick else "full"}]
'''


def test_runs_each_module_and_notes_the_broken_ones(report, tmp_path, monkeypatch, capsys):
    (tmp_path / "bench_fine.py").write_text(FINE)
    (tmp_path / "bench_broken.py").write_text("import no_such_module_anywhere\n")
    (tmp_path / "bench_fails.py").write_text("def run(progress=None):\n    raise RuntimeError('boom')\n")
    (tmp_path / "bench_norun.py").write_text("X = 1\n")
    monkeypatch.setattr(report, "HERE", tmp_path)
    out = tmp_path / "BENCHMARKS.md"

    code = report.main(["--quick", "--output", str(out)])

    assert code == 1  # a module was skipped
    text = out.read_text()
    assert "python benchmarks/report.py --quick" in text
    assert "| fine: latency | 1.500 | ms | nothing | 1.000 | 1.500 | < 2 ms | yes |" in text
    assert "quick" in text  # run() was told it is a quick run
    assert "`bench_broken.py` skipped: it failed to import" in text
    assert "`bench_fails` failed while running (RuntimeError: boom)" in text
    assert "`bench_norun.py` skipped: it has no run(progress) function" in text
    for header in ("cores", "Python", "SQLite", "ppp-otel"):
        assert header in text
    err = capsys.readouterr().err
    assert "fine] step one" in err  # progress on stderr


def test_only_selects_modules_by_short_name(report, tmp_path, monkeypatch, capsys):
    (tmp_path / "bench_fine.py").write_text(FINE)
    (tmp_path / "bench_other.py").write_text("def run(progress=None):\n    raise RuntimeError('ran')\n")
    monkeypatch.setattr(report, "HERE", tmp_path)

    code = report.main(["--only", "fine", "--json", "--no-write"])

    assert code == 0
    assert not (tmp_path / "BENCHMARKS.md").exists()
    out = capsys.readouterr().out
    assert '"name": "latency"' in out and "ran" not in out


def test_a_missed_target_is_marked(report):
    rows = report.normalize([{"name": "x", "value": 3.0, "unit": "ms", "ok": False}], "bench_thing")
    meta = {"date": "today", "command": "c", "quick": False, "seconds": 1.0, "machine": report.machine()}
    text = report.render(meta, rows, [])
    assert "| thing: x | 3.000 | ms | - | - | - | - | **NO** |" in text
    assert "1 target(s) missed: thing: x" in text
