"""Run as a script: logfire.configure() owns the global provider, ppp-otel records
through it with no tracer_provider given, and the spans go on to ingest.

    python logfire_agent.py LLM_URL DB_PATH INGEST_URL
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import logfire  # noqa: E402
import openai  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

import ppp_otel  # noqa: E402
from conversation import openai_chat_agent  # noqa: E402

llm_url, db_path, ingest_url = sys.argv[1:4]
memory = InMemorySpanExporter()
recorder = ppp_otel.TrajectorySpanProcessor(db_path)
logfire.configure(send_to_logfire=False, console=False,
                  additional_span_processors=[recorder, SimpleSpanProcessor(memory)])
client = openai.OpenAI(base_url=f"{llm_url}/v1", api_key="test", max_retries=0)
logfire.instrument_openai(client)
with ppp_otel.trajectory("spec-1", "agent-a"):
    openai_chat_agent(client)
logfire.force_flush()
recorder.shutdown()
spans = list(memory.get_finished_spans())
exporter = OTLPSpanExporter(endpoint=f"{ingest_url}/v1/traces", timeout=10)
size = -(-len(spans) // 2)
for i in range(0, len(spans), size):
    assert exporter.export(spans[i:i + size]).name == "SUCCESS"
