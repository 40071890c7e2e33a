"""benchmarks/instructions_per_turn.py: what it runs under valgrind, and how it counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import load_script

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "instructions_per_turn.py"


@pytest.fixture
def counter():
    return load_script(SCRIPT, "ppp_instructions_per_turn")


@pytest.mark.parametrize("pipeline", ["ppp", "bsp", "floor"])
def test_the_counted_child_drains_a_round_through_its_pipeline(pipeline):
    done = subprocess.run([sys.executable, str(SCRIPT), "--child", pipeline, "1", "sdk"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_start_up_and_warm_up_cancel_out_of_the_count_a_turn(counter, monkeypatch):
    # A fixed cost per process and 300 instructions a turn: only the turns are left.
    monkeypatch.setattr(counter, "instructions",
                        lambda pipeline, rounds, via: 10_000_000 + rounds * counter.TURNS_PER_ROUND * 300)
    assert counter.per_turn("ppp", "sdk", 1000, lambda message: None) == 300


@pytest.mark.parametrize("turns", ["0", "199"])
def test_fewer_turns_than_a_round_are_refused_naming_the_least(turns):
    done = subprocess.run([sys.executable, str(SCRIPT), "--turns", turns], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "--turns must be at least 200" in done.stderr


def test_without_valgrind_it_says_so_and_measures_nothing(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 2
    assert "valgrind is not on PATH" in done.stderr
