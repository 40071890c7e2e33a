"""A small multi-agent run through the real pipeline, for a first look.

Three agents work on the same spec, in two stages (plan, then implement), for
a user who wants at most one question per turn and short questions; then the
spec is run again after a prompt change ("look before you ask"), so there are
two runs to compare. Their turns go through ``trajectory()``/``turn()`` into a
real TracerProvider and TrajectorySpanProcessor; some questions and
violations are reported by the agent code, the rest are found by the recorder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


SPEC_ID = "demo-fix-flaky-test"
PROJECT_NAME = "ppp-otel-demo"
PREFERENCES = ("max_questions_per_turn(limit=1)", "short_questions(max_words=15)")
STAGES = ("plan", "implement")
#: The runs, in order: before the prompt change and after it.
RUN_NAMES = ("r1", "r2")

_TASK = "The test_upload test fails about one run in ten. Please fix it."
_PLAN = "Plan a fix for test_upload, which fails about one run in ten."
_SKIP = [("no_silent_skips", "fix or explain the flaky test", "skipped it", "major")]

# (stage, run) -> [(agent, technical score, turns)]. A turn is (prompt, response,
# explicit questions, explicit violations); None for questions means "let the
# recorder find them".
_SCRIPT = {
    ("plan", "r1"): [
        ("careful-agent", 0.8, [
            (_PLAN, "Plan: run test_upload 200 times to measure the failure rate, then look for a "
             "race with the server start-up. Should the fix go in this pull request or a separate one?",
             None, []),
        ]),
        ("curious-agent", 0.85, [
            (_PLAN, "Before I plan anything: could you grep the CI logs for every failing run of "
             "test_upload and send me the timings? And do you have a feeling for why it started failing?",
             None, []),
        ]),
        ("hasty-agent", 0.5, [
            (_PLAN, "Plan: mark test_upload as flaky and skip it on CI.", [], _SKIP),
        ]),
    ],
    ("implement", "r1"): [
        ("careful-agent", 0.82, [
            (_TASK, "I can reproduce it locally. Do you prefer a retry decorator or a fixed sleep?",
             None, []),
            ("A retry decorator.",
             "Done: test_upload now retries twice on ConnectionResetError. All 212 tests pass.",
             None, []),
        ]),
        ("curious-agent", 0.9, [
            (_TASK, "Which Python version are you running in CI? Could you investigate the CI logs "
             "and send me the failing runs before proceeding?", None, []),
            ("3.11; here are the logs.",
             "The upload races the server start-up. I added a readiness wait.",
             [("Would you like me to add a regression test?", "low")], []),
            ("Yes.", "Added test_upload_waits_for_server; the suite is green 50 runs in a row.", None, []),
        ]),
        ("hasty-agent", 0.55, [
            (_TASK, "I marked test_upload as flaky and skipped it on CI.", [], _SKIP),
        ]),
    ],
    # After the prompt change: the agents read the logs themselves before asking.
    ("plan", "r2"): [
        ("careful-agent", 0.85, [
            (_PLAN, "Plan: run test_upload 200 times to measure the failure rate, then look for a "
             "race with the server start-up. Should the fix go in this pull request or a separate one?",
             None, []),
        ]),
        ("curious-agent", 0.9, [
            (_PLAN, "Plan: I read the CI logs; every failure follows a slow server start, so I will "
             "add a readiness wait. Do you want the fix in this pull request or a separate one?",
             None, []),
        ]),
        ("hasty-agent", 0.5, [
            (_PLAN, "Plan: mark test_upload as flaky and skip it on CI.", [], _SKIP),
        ]),
    ],
    ("implement", "r2"): [
        ("careful-agent", 0.84, [
            (_TASK, "I can reproduce it locally. Do you prefer a retry decorator or a fixed sleep?",
             None, []),
            ("A retry decorator.",
             "Done: test_upload now retries twice on ConnectionResetError. All 212 tests pass.",
             None, []),
        ]),
        ("curious-agent", 0.92, [
            (_TASK, "The upload raced the server start-up; I added a readiness wait. Would you like "
             "me to add a regression test?", None, []),
            ("Yes.", "Added test_upload_waits_for_server; the suite is green 50 runs in a row.", None, []),
        ]),
        ("hasty-agent", 0.6, [
            (_TASK, "I wrapped the upload in a retry; test_upload passes now.", [], []),
        ]),
    ],
}


@dataclass
class DemoRun:
    db_path: str
    #: The last run recorded (the runs are ``run_ids``, in order).
    run_id: str
    spec_id: str = SPEC_ID
    run_ids: list[str] = field(default_factory=list)
    stages: tuple[str, ...] = STAGES
    #: (stage, run id) -> agent -> technical score
    technical: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
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
    """Record the scripted agents, two runs of two stages, into ``db_path`` and wait until
    every row is written. ``run_id`` prefixes the runs' ids (``<run_id>-r1``, ``<run_id>-r2``).

    ``phoenix``: a Phoenix URL; the spans go there too (project ``project_name``),
    with each turn's judgment as span annotations.
    """
    # Here, not at the top: the command line imports this module for its names
    # on every command, and only `ppp-otel demo` records.
    import uuid

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from ppp_otel.capture.api import trajectory, turn
    from ppp_otel.capture.processor import TrajectorySpanProcessor
    from ppp_otel.conventions import PROJECT_NAME

    prefix = run_id or f"demo-{uuid.uuid4().hex[:8]}"
    run_ids = [f"{prefix}-{name}" for name in RUN_NAMES]
    run = DemoRun(os.fspath(db_path), run_ids[-1], run_ids=run_ids)
    forwarding = None
    if phoenix:
        from ppp_otel.config.settings import PhoenixConfig, environ
        from ppp_otel.capture.register import phoenix_processors

        # The demo is there to be looked at: it gives Phoenix longer than an app's exit would.
        forwarding = phoenix_processors(phoenix, PhoenixConfig(), environ(env), shutdown_timeout_s=10.0)
    sender = forwarding[1] if forwarding else None
    processor = TrajectorySpanProcessor(run.db_path, flush_interval_ms=100,
                                        on_judged=sender.judged if sender else None)
    provider = TracerProvider(resource=Resource.create(
        {PROJECT_NAME: project_name, "service.name": "ppp-otel-demo"}))
    provider.add_span_processor(processor)
    if forwarding:
        for extra in forwarding:
            provider.add_span_processor(extra)
    try:
        for name, run_id_ in zip(RUN_NAMES, run_ids):
            for stage in STAGES:
                for agent, technical, turns in _SCRIPT[stage, name]:
                    run.technical.setdefault((stage, run_id_), {})[agent] = technical
                    with trajectory(SPEC_ID, agent, run_id_, stage=stage,
                                    preferences=list(PREFERENCES), tracer_provider=provider) as traj:
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
