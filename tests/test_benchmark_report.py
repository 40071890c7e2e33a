"""benchmarks/report.py: discovery, skipped modules, the generated table."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import load_script

REPORT = Path(__file__).resolve().parent.parent / "benchmarks" / "report.py"


@pytest.fixture
def report():
    return load_script(REPORT, "ppp_benchmark_report")


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

    code = report.main(["--quick", "--output", str(out)])  # --output writes there

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

    code = report.main(["--only", "fine", "--json"])

    assert code == 0
    out = capsys.readouterr().out
    assert '"name": "latency"' in out and "ran" not in out


def test_without_write_the_tracked_report_is_left_alone(report, tmp_path, monkeypatch, capsys):
    (tmp_path / "bench_fine.py").write_text(FINE)
    monkeypatch.setattr(report, "HERE", tmp_path)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    tracked = tmp_path / "BENCHMARKS.md"
    tracked.write_text("published figures\n")

    assert report.main([]) == 0
    assert tracked.read_text() == "published figures\n"
    assert "| fine: latency | 1.500 | ms |" in capsys.readouterr().out  # printed instead

    assert report.main(["--write"]) == 0
    assert "| fine: latency | 1.500 | ms |" in tracked.read_text()


def test_the_missed_targets_are_named_last_with_figure_and_baseline(report, tmp_path, monkeypatch, capsys):
    (tmp_path / "bench_slow.py").write_text(
        "def run(progress=None):\n"
        "    return [{'name': 'app thread', 'value': 30.0, 'unit': 'us', 'baseline_name': 'bare',\n"
        "             'baseline_value': 20.0, 'ratio': 1.5, 'target': 'ratio <= 1.10', 'ok': False},\n"
        "            {'name': 'fine one', 'value': 1.0, 'unit': 'us', 'ok': True}]\n")
    monkeypatch.setattr(report, "HERE", tmp_path)

    assert report.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2] == "1 of 2 rows miss their target:"
    assert err[-1] == ("  MISSED slow: app thread: 30.0 us (baseline bare: 20.0; ratio 1.500; "
                       "target ratio <= 1.10)")


def test_recorder_warnings_are_not_printed_line_by_line(report, tmp_path, monkeypatch, capsys):
    (tmp_path / "bench_noisy.py").write_text(
        "import logging\n"
        "def run(progress=None):\n"
        "    for _ in range(100):\n"
        "        logging.getLogger('ppp_otel.capture.processor').warning('queue full, record dropped')\n"
        "    return [{'name': 'x', 'value': 1.0, 'unit': 'us', 'ok': True}]\n")
    monkeypatch.setattr(report, "HERE", tmp_path)

    assert report.main([]) == 0
    assert "record dropped" not in capsys.readouterr().err


def test_a_missed_target_is_marked(report):
    rows = report.normalize([{"name": "x", "value": 3.0, "unit": "ms", "ok": False}], "bench_thing")
    meta = {"date": "today", "command": "c", "quick": False, "seconds": 1.0, "machine": report.machine()}
    text = report.render(meta, rows, [])
    assert "| thing: x | 3.000 | ms | - | - | - | - | **NO** |" in text
    assert "1 target(s) missed: thing: x" in text


def test_a_missed_target_says_why_when_its_benchmark_knows(report):
    rows = report.normalize([
        {"name": "slow", "value": 3.0, "unit": "ms", "ok": False, "why": "the writer shares the GIL"},
        {"name": "fast", "value": 1.0, "unit": "ms", "ok": True, "why": "never shown"},
    ], "bench_thing")
    meta = {"date": "today", "command": "c", "quick": False, "seconds": 1.0, "machine": report.machine()}
    text = report.render(meta, rows, [])
    assert "## Why the missed targets are missed\n\n- thing: slow: the writer shares the GIL\n" in text
    assert "never shown" not in text
