"""The conformance suite's parts: a scripted LLM on loopback, a recording
pipeline that also keeps every span, and ``ppp-otel ingest`` to replay them to.

Every instrumentation is driven through the same three-exchange conversation
(see ``conversation.py``): a question in the reply text, a tool loop, and a
question asked through the ``ask_user`` tool.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conversation")

from conversation import Recording  # noqa: E402
from llm_protocols import ScriptedLLM  # noqa: E402


@pytest.fixture
def llm():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def recording(tmp_path):
    rec = Recording(tmp_path / "in_process.db")
    yield rec
    rec.provider.shutdown()


