"""logfire's instrument_openai, with logfire owning the global tracer provider.

In a child process: logfire.configure() sets global state that the rest of the
suite must not inherit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conversation import EXPECTED_TOOL_CALLS, EXPECTED_TURNS, SCRIPT, tool_calls, turns
from ppp_otel.ingest.server import IngestServer

pytest.importorskip("logfire")
pytest.importorskip("openai")

AGENT = Path(__file__).with_name("logfire_agent.py")


def test_logfire_instrument_openai_behind_its_proxy_provider(llm, tmp_path):
    llm.script(*SCRIPT)
    in_process, ingested = tmp_path / "in_process.db", tmp_path / "ingest.db"
    server = IngestServer(ingested, port=0).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGFIRE_", "PPP_OTEL_"))}
        result = subprocess.run([sys.executable, str(AGENT), llm.url, str(in_process), server.url],
                                capture_output=True, text=True, timeout=120, env=env)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert "nothing is recorded" not in result.stderr  # the proxy does record
    assert turns(in_process) == EXPECTED_TURNS
    assert tool_calls(in_process) == EXPECTED_TOOL_CALLS
    assert turns(ingested) == EXPECTED_TURNS
    assert tool_calls(ingested) == EXPECTED_TOOL_CALLS
