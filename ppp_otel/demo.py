"""A small multi-agent run through the real pipeline, for a first look.

Three agents work on the same spec for a user who wants at most one question
per turn and short questions. Their turns go through ``trajectory()``/``turn()``
into a real TracerProvider and TrajectorySpanProcessor; some questions and
violations are reported by the agent code, the rest are found by the recorder.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from .instrument import trajectory, turn
from .processor import TrajectorySpanProcessor
from .setup import PROJECT_NAME_ATTRIBUTE

SPEC_ID = "demo-fix-flaky-test"
PROJECT_NAME = "ppp-otel-demo"
PREFERENCES = ("max_questions_per_turn(limit=1)", "short_questions(max_words=15)")

# (agent, technical score, turns). A turn is (prompt, response, explicit questions,
# explicit violations); None for questions means "let the recorder find them".
_SCRIPT = [
    (
        "careful-agent",
        0.82,
        [
            ("The test_upload test fails about one run in ten. Please fix it.",
             "I can reproduce it locally. Do you prefer a retry decorator or a fixed sleep?",
             None, []),
            ("A retry decorator.",
             "Done: test_upload now retries twice on ConnectionResetError. All 212 tests pass.",
             None, []),
        ],
    ),
    (
        "curious-agent",
        0.9,
        [
            ("The test_upload test fails about one run in ten. Please fix it.",
             "Which Python version are you running in CI? Could you investigate the CI logs "
             "and send me the failing runs before proceeding?",
             None, []),
            ("3.11; here are the logs.",
             "The upload races the server start-up. I added a readiness wait.",
             [("Would you like me to add a regression test?", "low")], []),
            ("Yes.", "Added test_upload_waits_for_server; the suite is green 50 runs in a row.", None, []),
        ],
    ),
    (
        "hasty-agent",
        0.55,
        [
            ("The test_upload test fails about one run in ten. Please fix it.",
             "I marked test_upload as flaky and skipped it on CI.",
             [], [("no_silent_skips", "fix or explain the flaky test", "skipped it", "major")]),
        ],
    ),
]


@dataclass
class DemoRun:
    db_path: str
    run_id: str
    spec_id: str = SPEC_ID
    technical: dict[str, float] = field(default_factory=dict)
    recorder: dict = field(default_factory=dict)
    phoenix: dict | None = None  # the annotation sender's counters, when sent to Phoenix


def record_demo(
    db_path: str | os.PathLike,
    *,
    run_id: str | None = None,
    phoenix: str | None = None,
    project_name: str = PROJECT_NAME,
    env: dict[str, str] | None = None,
) -> DemoRun:
    """Record the scripted agents into ``db_path`` and wait until every row is written.

    ``phoenix``: a Phoenix URL; the spans go there too (project ``project_name``),
    with each turn's judgment as span annotations.
    """
    run = DemoRun(os.fspath(db_path), run_id or f"demo-{uuid.uuid4().hex[:8]}")
    forwarding = None
    if phoenix:
        from .config import PhoenixConfig
        from .setup import phoenix_processors

        forwarding = phoenix_processors(phoenix, PhoenixConfig(), os.environ if env is None else env)
    sender = forwarding[1] if forwarding else None
    processor = TrajectorySpanProcessor(run.db_path, flush_interval_ms=100,
                                        on_judged=sender.judged if sender else None)
    provider = TracerProvider(resource=Resource.create(
        {PROJECT_NAME_ATTRIBUTE: project_name, "service.name": "ppp-otel-demo"}))
    provider.add_span_processor(processor)
    if forwarding:
        for extra in forwarding:
            provider.add_span_processor(extra)
    try:
        for agent, technical, turns in _SCRIPT:
            run.technical[agent] = technical
            with trajectory(SPEC_ID, agent, run.run_id, preferences=list(PREFERENCES),
                            tracer_provider=provider) as traj:
                traj.set_technical_score(technical)
                for prompt, response, questions, violations in turns:
                    with turn(prompt, tracer_provider=provider) as t:
                        t.respond(response, prompt_tokens=len(prompt.split()) * 2,
                                  completion_tokens=len(response.split()) * 2)
                        for text, effort in questions or []:
                            t.question(text, effort)
                        for preference, expected, actual, severity in violations:
                            t.violation(preference, expected, actual, severity)
        provider.force_flush()
    finally:
        run.recorder = processor.stats
        provider.shutdown()
        if sender is not None:
            run.phoenix = sender.stats
    return run
