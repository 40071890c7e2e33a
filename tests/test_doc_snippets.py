"""Every Python snippet of README.md and docs/*.md runs as written, as a user pastes it.

Each runs in a fresh directory of its own, with the databases the docs have the reader make
first (`ppp-otel demo --db demo.db`, `ppp-otel demo --db stages.db --run-prefix week1`), and
Phoenix named at a port where nothing listens, so that nothing reaches a Phoenix this
machine may be running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ppp_otel.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Snippets that call a paid model API: they need the user's own key and model.
NEEDS_A_MODEL_API = ("openai.OpenAI()",)


def _snippets() -> list:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            line = text.count("\n", 0, match.start()) + 1
            code = match.group(1)
            if code.lstrip().startswith(">>>"):
                code = "\n".join(l[4:] for l in code.splitlines() if l.startswith((">>> ", "... ")))
            marks = [pytest.mark.skip(reason="calls a model API")] if any(
                call in code for call in NEEDS_A_MODEL_API) else []
            found.append(pytest.param(code, id=f"{doc.relative_to(ROOT)}:{line}", marks=marks))
    return found


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    made = tmp_path_factory.mktemp("made")
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            assert main(["demo", "--db", str(made / "demo.db")]) == 0
            assert main(["demo", "--db", str(made / "stages.db"), "--run-prefix", "week1"]) == 0
        finally:
            sys.stdout = stdout
    return made


@pytest.mark.parametrize("code", _snippets())
def test_the_snippet_runs_as_written(code, databases, tmp_path):
    here = tmp_path / "here"
    shutil.copytree(databases, here)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PPP_OTEL_", "PHOENIX_", "OTEL_"))}
    env["PHOENIX_COLLECTOR_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens
    done = subprocess.run([sys.executable, "-c", code], cwd=here, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    # A snippet that records without a provider runs, but shows the reader nothing happening.
    assert "nothing is recorded" not in done.stderr, done.stderr[-3000:]
