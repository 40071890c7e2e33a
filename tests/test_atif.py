"""ATIF in and out: what an imported document becomes, what an export holds, and the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ppp_otel.interchange.atif import EXPORT_VERSION, export_atif, import_paths, validate
from ppp_otel.cli import main
from ppp_otel.model import Question, Violation
from ppp_otel.capture.processor import TrajectorySpanProcessor
from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage.sqlite.reader import TrajectoryStore

DATA = Path(__file__).parent / "data" / "atif"
FULL = DATA / "full.trajectory.json"
BAD = DATA / "bad"


pytestmark = pytest.mark.usefixtures("no_ambient_database")


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "runs.db"


def trajectories(db_path, **filters):
    with TrajectoryStore(db_path) as store:
        return [store.get_trajectory(t.id) for t in store.list_trajectories(**filters)]


def only(db_path, **filters):
    [found] = trajectories(db_path, **filters)
    return found


def turn_extras(db_path, trajectory_id) -> list[dict]:
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT extra FROM trajectory_turns WHERE trajectory_id = ? ORDER BY turn_number",
            (trajectory_id,),
        ).fetchall()
    return [json.loads(text) for (text,) in rows]


def copy_to(tmp_path, *sources: Path, name: str = "runs") -> Path:
    target = tmp_path / name
    target.mkdir()
    for source in sources:
        shutil.copy(source, target / source.name)
    return target


# --- import: what a document becomes ------------------------------------------

def test_a_document_becomes_a_trajectory_named_by_its_agent_with_its_session_as_run(db):
    import_paths([FULL], db)
    main_run = only(db, agent_name="terminus-2")
    assert main_run.run_id == "run-2025-10-16-001"
    assert main_run.spec_id == "run-2025-10-16-001"  # no spec given: the session names it


def test_each_agent_step_is_a_turn_prompted_by_the_users_latest_message_not_the_system_prompt(db):
    import_paths([FULL], db)
    turns = only(db, agent_name="terminus-2").turns
    assert turns[0].prompt == "The test suite fails on main. Please fix it."
    assert turns[0].response == "I will run the tests first."
    assert turns[1].prompt is None  # two agent steps in a row: nothing was said in between
    assert turns[2].prompt == "Parse them."


def test_user_messages_after_the_last_agent_step_are_a_last_turn_without_response(db):
    import_paths([FULL], db)
    last = only(db, agent_name="terminus-2").turns[-1]
    assert (last.number, last.prompt, last.response) == (4, "Thanks, that is all.", None)


def test_a_turns_tokens_are_its_prompt_plus_completion_tokens(db):
    import_paths([FULL], db)
    assert [t.token_count for t in only(db, agent_name="terminus-2").turns] == [600, 740, 960, None]


def test_step_timestamps_are_kept_on_turns_and_trajectory(db):
    import_paths([FULL], db)
    found = only(db, agent_name="terminus-2")
    assert found.turns[0].timestamp == "2025-10-16T14:30:05.000Z"
    assert (found.created_at, found.ended_at) == ("2025-10-16T14:30:00.000Z", "2025-10-16T14:32:00.000Z")


def test_tool_calls_observations_reasoning_and_metrics_are_kept_in_the_turn_extra(db):
    import_paths([FULL], db)
    first = turn_extras(db, only(db, agent_name="terminus-2").id)[0]["atif"]
    step = first["agent_step"]
    assert step["tool_calls"][0] == {"tool_call_id": "call_1", "function_name": "bash", "arguments": {"cmd": "pytest -x"}}
    assert step["observation"]["results"][0]["content"].startswith("FAILED tests/test_dates.py")
    assert step["reasoning_content"] == "Running the suite shows which test fails."
    assert step["metrics"]["cost_usd"] == 0.0012
    assert [s["source"] for s in first["context_steps"]] == ["system", "user"]


def test_the_documents_own_fields_are_kept_with_its_first_turn(db):
    import_paths([FULL], db)
    document = turn_extras(db, only(db, agent_name="terminus-2").id)[0]["atif"]["document"]
    assert document["agent"]["model_name"] == "gpt-5-mini"
    assert document["final_metrics"]["total_steps"] == 7
    assert document["extra"] == {"benchmark": "hand-written"}


def test_an_embedded_subagent_is_its_own_trajectory_linked_to_its_parent(db):
    import_paths([FULL], db)
    parent, child = only(db, agent_name="terminus-2"), only(db, agent_name="locale-scout")
    assert child.turns[0].response == "Locales in use: en_US and de_DE."
    assert child.trace_id == parent.trace_id  # one run, one trace
    with closing(sqlite3.connect(db)) as conn:
        (parent_id,) = conn.execute(
            "SELECT parent_trajectory_id FROM trajectories WHERE id = ?", (child.id,)
        ).fetchone()
    assert parent_id == parent.id


def test_questions_are_extracted_and_their_effort_classified_as_for_live_turns(db):
    import_paths([FULL], db)
    questions = [(q.text, q.effort_level, q.source) for t in only(db, agent_name="terminus-2").turns for q in t.questions]
    assert questions == [
        ("Which behaviour do you prefer: reject them with a clear error, or parse them?", "low", "extracted"),
        ("Before proceeding, could you investigate which locales your users run with?", "high", "extracted"),
    ]


def test_preference_detectors_run_on_imported_turns(db):
    import_paths([DATA / "with_preferences.json"], db)
    found = only(db)
    assert (found.spec_id, found.preferences, found.technical_score) == ("setup-ci", ["no_questions"], 0.8)
    assert [v.preference_name for v in found.turns[0].violations] == ["no_questions"]
    assert found.turns[0].violations[0].source == "detected"


def test_importing_the_same_document_twice_stores_it_once(db):
    first = import_paths([FULL], db)
    second = import_paths([FULL], db)
    assert (first.duplicates, second.duplicates) == (0, second.turns)
    assert len(trajectories(db)) == 2
    assert sum(len(t.turns) for t in trajectories(db)) == first.turns


def test_spec_and_agent_can_be_given_for_the_imported_document(db):
    import_paths([FULL], db, spec_id="fix-dates", agent_name="my-agent")
    assert {(t.spec_id, t.agent_name) for t in trajectories(db)} == {
        ("fix-dates", "my-agent"), ("fix-dates", "locale-scout"),  # a subagent keeps its name
    }


def test_json_lines_hold_one_document_a_line(db):
    summary = import_paths([DATA / "runs.jsonl"], db)
    assert summary.imported == 2
    assert [t.agent_name for t in trajectories(db)] == ["agent-a", "agent-b"]


def test_a_bad_line_in_json_lines_costs_only_that_document(db, tmp_path):
    lines = (DATA / "runs.jsonl").read_text().splitlines()
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    summary = import_paths([path], db)
    assert summary.imported == 2
    assert [(file, reason.split(": ")[0]) for file, reason in summary.skipped] == [(str(path), "line 2")]


def test_any_v1_minor_version_is_read_and_unknown_fields_are_kept(db):
    summary = import_paths([DATA / "v1_0_minimal.json"], db)
    assert summary.ok
    extra = turn_extras(db, only(db).id)[0]["atif"]
    assert extra["agent_step"]["future_field"] == {"kept": True}
    assert extra["document"]["a_field_from_v1_9"] == "ignored but kept"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing_steps.json", "no steps list"),
        ("non_sequential.json", "step 3: step_id is 4, expected 3"),
        ("unknown_major.json", "unknown major version 'ATIF-v2.0'"),
        ("not_json.json", "not JSON"),
    ],
)
def test_a_broken_document_is_skipped_with_its_file_and_a_reason_naming_the_step(db, name, reason):
    summary = import_paths([BAD / name], db)
    assert summary.imported == 0
    [(file, why)] = summary.skipped
    assert file == str(BAD / name)
    assert why.startswith(reason)


def write_full(tmp_path, change) -> Path:
    """The full document with ``change(document)`` applied, written to a file of its own."""
    document = json.loads(FULL.read_text())
    change(document)
    path = tmp_path / "changed.trajectory.json"
    path.write_text(json.dumps(document))
    return path


def test_a_step_timestamp_that_is_not_iso_8601_skips_the_document_naming_the_step_and_the_value(db, tmp_path):
    path = write_full(tmp_path, lambda doc: doc["steps"][2].update(timestamp="not a date"))
    summary = import_paths([path], db)
    assert (summary.imported, summary.skipped) == (0, [
        (str(path), "step 3: timestamp is 'not a date', not an ISO 8601 time (e.g. 2025-10-16T14:30:00Z)")
    ])
    assert not trajectories(db)


def test_a_timestamp_that_is_not_a_string_skips_the_document(db, tmp_path):
    path = write_full(tmp_path, lambda doc: doc["steps"][0].update(timestamp=1760625000))
    [(_, why)] = import_paths([path], db).skipped
    assert why.startswith("step 1: timestamp is 1760625000, not an ISO 8601 time")


@pytest.mark.parametrize("stamp, stored", [
    ("2025-10-16T14:30:05Z", "2025-10-16T14:30:05.000Z"),
    ("2025-10-16T14:30:05.123456789Z", "2025-10-16T14:30:05.123Z"),
    ("2025-10-16T16:30:05+02:00", "2025-10-16T14:30:05.000Z"),
    ("2025-10-16T09:30:05.5-05:00", "2025-10-16T14:30:05.500Z"),
    ("2025-10-16T14:30:05.123Z", "2025-10-16T14:30:05.123Z"),
])
def test_iso_8601_timestamps_in_their_usual_spellings_are_stored_in_utc_with_milliseconds(db, tmp_path, stamp, stored):
    path = write_full(tmp_path, lambda doc: doc["steps"][2].update(timestamp=stamp))
    assert import_paths([path], db).ok
    assert only(db, agent_name="terminus-2").turns[0].timestamp == stored


@pytest.mark.parametrize("stamp", ["2025-10-16 14:30:05", "2025-10-16T14:30:05"])
def test_a_timestamp_without_an_offset_is_read_as_utc(db, tmp_path, stamp):
    path = write_full(tmp_path, lambda doc: doc["steps"][2].update(timestamp=stamp))
    assert import_paths([path], db).ok
    assert only(db, agent_name="terminus-2").turns[0].timestamp == "2025-10-16T14:30:05.000Z"


def test_the_times_in_extra_ppp_are_stored_in_utc_with_milliseconds(db, tmp_path):
    def change(doc):
        doc.setdefault("extra", {})["ppp"] = {
            "created_at": "2025-10-16T16:29:00+02:00", "ended_at": "2025-10-16 14:33:00"}
        doc["steps"][2].setdefault("extra", {})["ppp"] = {"timestamp": "2025-10-16T10:30:04-04:00"}
    assert import_paths([write_full(tmp_path, change)], db).ok
    found = only(db, agent_name="terminus-2")
    assert (found.created_at, found.ended_at) == ("2025-10-16T14:29:00.000Z", "2025-10-16T14:33:00.000Z")
    assert found.turns[0].timestamp == "2025-10-16T14:30:04.000Z"


def a_run_at(tmp_path, name: str, stamp: str) -> Path:
    """A one-turn document of agent ``name`` whose every time is ``stamp``."""
    document = {"schema_version": "ATIF-v1.7", "session_id": f"run-{name}", "agent": {"name": name, "version": "1"},
                "steps": [{"step_id": 1, "source": "user", "message": "Fix the build", "timestamp": stamp},
                          {"step_id": 2, "source": "agent", "message": "Done.", "timestamp": stamp}]}
    path = tmp_path / f"{name}.trajectory.json"
    path.write_text(json.dumps(document))
    return path


def test_a_trajectory_written_with_an_offset_is_listed_in_time_order(db, tmp_path):
    runs = copy_to(tmp_path, a_run_at(tmp_path, "late", "2025-10-16T15:00:00Z"),
                   a_run_at(tmp_path, "early", "2025-10-16T16:30:00+02:00"))  # 14:30 UTC
    assert import_paths([runs], db).ok
    assert [t.agent_name for t in trajectories(db)] == ["early", "late"]


def test_cleanup_older_than_selects_an_offset_trajectory_by_its_instant(db, tmp_path):
    from datetime import datetime, timezone

    from ppp_otel.storage.sqlite.retention import cleanup

    # 22:30 UTC on the 16th, though its own day is the 17th; the cutoff is 23:00 UTC on the 16th.
    runs = copy_to(tmp_path, a_run_at(tmp_path, "past", "2025-10-17T00:30:00+02:00"),
                   a_run_at(tmp_path, "kept", "2025-10-16T23:30:00Z"))
    assert import_paths([runs], db).ok
    summary = cleanup(db, older_than_days=1, now=datetime(2025, 10, 17, 23, 0, tzinfo=timezone.utc))
    assert summary.trajectories == 1
    assert [t.agent_name for t in trajectories(db)] == ["kept"]


@pytest.mark.parametrize("key, value", [
    ("prompt_tokens", "many"), ("completion_tokens", 1.5), ("cached_tokens", -1), ("prompt_tokens", True),
])
def test_a_token_metric_that_is_not_a_whole_number_skips_the_document_naming_it(db, tmp_path, key, value):
    path = write_full(tmp_path, lambda doc: doc["steps"][3]["metrics"].update({key: value}))
    summary = import_paths([path], db)
    assert (summary.imported, summary.skipped) == (0, [
        (str(path), f"step 4: metrics.{key} is {value!r}, expected a whole number of tokens (0 or more)")
    ])


def test_a_cost_that_is_not_a_number_skips_the_document(db, tmp_path):
    path = write_full(tmp_path, lambda doc: doc["steps"][2]["metrics"].update(cost_usd="cheap"))
    [(_, why)] = import_paths([path], db).skipped
    assert why == "step 3: metrics.cost_usd is 'cheap', expected a number"


def test_a_malformed_timestamp_in_extra_ppp_skips_the_document(db, tmp_path):
    path = write_full(tmp_path, lambda doc: doc.setdefault("extra", {}).setdefault("ppp", {}).update(created_at="soon"))
    [(_, why)] = import_paths([path], db).skipped
    assert why.startswith("extra.ppp.created_at is 'soon', not an ISO 8601 time")


def test_a_directory_import_skips_the_bad_files_and_imports_the_rest(db):
    summary = import_paths([DATA], db)
    assert summary.imported == 6  # full, claude_code_asks, with_preferences, v1_0_minimal and two JSON lines
    assert sorted(Path(f).name for f, _ in summary.skipped) == sorted(p.name for p in BAD.iterdir())
    assert not summary.ok


def test_other_json_in_a_directory_is_passed_over_not_skipped(db, tmp_path):
    runs = copy_to(tmp_path, FULL)
    (runs / "config.json").write_text('{"n_attempts": 1}')
    summary = import_paths([runs], db)
    assert (summary.ok, summary.ignored) == (True, [str(runs / "config.json")])


def test_a_missing_path_is_an_error_before_anything_is_written(db, tmp_path):
    with pytest.raises(FileNotFoundError):
        import_paths([FULL, tmp_path / "typo"], db)
    assert not db.exists()


def test_progress_is_reported_after_each_file(db):
    calls = []
    import_paths([DATA / "runs.jsonl", FULL], db, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


# --- export -------------------------------------------------------------------

def check_atif(doc: dict, *, version: str = EXPORT_VERSION) -> None:
    """The ATIF-v1.7 rules (harbor.models.trajectories) an export must keep."""
    validate(doc, "export")
    assert doc["schema_version"] == version
    assert isinstance(doc["agent"]["name"], str) and isinstance(doc["agent"]["version"], str)
    assert [s["step_id"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    for step in doc["steps"]:
        assert isinstance(step["message"], (str, list))
        if step["source"] != "agent":
            assert not {"model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics"} & set(step)
        calls = {c["tool_call_id"] for c in step.get("tool_calls") or []}
        for result in (step.get("observation") or {}).get("results", []):
            assert result.get("source_call_id") in calls | {None}
    subagents = doc.get("subagent_trajectories") or []
    assert len({s["trajectory_id"] for s in subagents}) == len(subagents)
    for sub in subagents:
        check_atif(sub, version=version)


def exported(db_path, out, **kwargs) -> list[dict]:
    return [json.loads(p.read_text()) for p in export_atif(db_path, out, **kwargs)]


def test_export_writes_a_valid_atif_v1_7_document_per_top_level_trajectory(db, tmp_path):
    import_paths([DATA], db)
    docs = exported(db, tmp_path / "out")
    assert len(docs) == 6  # the subagent travels inside its parent
    for doc in docs:
        check_atif(doc)


def test_export_is_valid_for_harbors_own_models(db, tmp_path):
    models = pytest.importorskip(
        "harbor.models.trajectories",
        reason="Harbor is not installed: pip install -e '.[all,harbor]' (Harbor needs Python 3.12 or newer)")
    import_paths([DATA], db)
    for doc in exported(db, tmp_path / "out"):
        models.Trajectory.model_validate(doc)


def test_export_embeds_subagents_with_their_trajectory_id(db, tmp_path):
    import_paths([FULL], db)
    [doc] = exported(db, tmp_path / "out")
    [sub] = doc["subagent_trajectories"]
    assert (sub["trajectory_id"], sub["agent"]["name"]) == ("locale-survey", "locale-scout")


def test_export_puts_the_rewards_and_the_trajectory_in_top_level_extra_ppp(db, tmp_path):
    import_paths([FULL], db, spec_id="fix-dates")
    [doc] = exported(db, tmp_path / "out")
    ppp = doc["extra"]["ppp"]
    assert (ppp["r_proact"], ppp["r_pers"]) == (-0.5, 0.05)  # one high-effort question, no violations
    assert (ppp["spec_id"], ppp["agent_name"], ppp["run_id"]) == ("fix-dates", "terminus-2", "run-2025-10-16-001")
    assert doc["extra"]["benchmark"] == "hand-written"  # the document's own extra stays beside it


def test_export_puts_questions_with_effort_and_violations_on_each_agent_step(db, tmp_path):
    import_paths([DATA / "with_preferences.json"], db)
    [doc] = exported(db, tmp_path / "out")
    step = doc["steps"][1]["extra"]["ppp"]
    assert step["questions"] == [
        {"text": "Which CI do you prefer, GitHub Actions or GitLab CI?", "effort": "low", "source": "extracted"}
    ]
    assert [(v["preference"], v["severity"]) for v in step["violations"]] == [("no_questions", "critical")]


def test_export_can_be_limited_to_a_spec_or_one_trajectory(db, tmp_path):
    import_paths([DATA], db)
    assert [d["extra"]["ppp"]["spec_id"] for d in exported(db, tmp_path / "a", spec_id="setup-ci")] == ["setup-ci"]
    child = only(db, agent_name="locale-scout")
    [doc] = exported(db, tmp_path / "b", trajectory_id=child.id)
    assert doc["agent"]["name"] == "locale-scout"


def test_a_trajectory_without_turns_exports_with_a_placeholder_step_import_drops(db, tmp_path):
    processor = TrajectorySpanProcessor(db)
    processor.submit([TrajectoryRecord("b" * 32, "7" * 16, "spec-y", "silent")])
    processor.shutdown()
    [doc] = exported(db, tmp_path / "out")
    check_atif(doc)
    import_paths([tmp_path / "out"], tmp_path / "again.db")
    assert store_view(tmp_path / "again.db") == store_view(db)


def test_export_of_an_unknown_trajectory_is_an_error(db, tmp_path):
    import_paths([FULL], db)
    with pytest.raises(ValueError, match="no trajectory with id 99"):
        export_atif(db, tmp_path / "out", trajectory_id=99)


# --- round trip ---------------------------------------------------------------

def store_view(db_path) -> list[dict]:
    """Everything the store shows, minus row ids (a new database numbers its own)."""
    views = []
    for t in trajectories(db_path):
        data = t.to_dict()
        data.pop("id")
        views.append(data)
    return sorted(views, key=lambda v: v["span_id"])


def record_live(db_path) -> None:
    """Trajectories as live recording writes them: explicit and extracted questions,
    violations, a turn without a response, a subagent."""
    parent = TrajectoryRecord("a" * 32, "1" * 16, "spec-x", "alice", run_id="run-7",
                              preferences=("no_commas",), technical_score=0.9,
                              started_at="2025-01-01T10:00:00.000Z")
    child = TrajectoryRecord("a" * 32, "2" * 16, "spec-x", "helper", run_id="run-7",
                             started_at="2025-01-01T10:00:02.000Z", parent=parent.key)
    records = [
        parent,
        TurnRecord("a" * 32, "3" * 16, parent.key, 1, "Fix the build", "Do you prefer make or ninja?",
                   token_count=42, latency_ms=12.5, timestamp="2025-01-01T10:00:01.000Z"),
        TurnRecord("a" * 32, "4" * 16, parent.key, 2, "ninja", "How should I structure the targets?",
                   questions=[Question("How should I structure the targets?", "high")],
                   violations=[Violation("concise", "under 50 words", "120 words", "minor")],
                   extract_questions=False, timestamp="2025-01-01T10:00:03.000Z"),
        TurnRecord("a" * 32, "5" * 16, parent.key, 3, "still there?", None, timestamp="2025-01-01T10:00:04.000Z"),
        child,
        TurnRecord("a" * 32, "6" * 16, child.key, 1, None, "Build files found.", timestamp="2025-01-01T10:00:02.500Z"),
        TrajectoryRecord("a" * 32, "2" * 16, "spec-x", "helper", run_id="run-7",
                         started_at="2025-01-01T10:00:02.000Z", ended_at="2025-01-01T10:00:02.900Z", parent=parent.key),
        TrajectoryRecord("a" * 32, "1" * 16, "spec-x", "alice", run_id="run-7", preferences=("no_commas",),
                         technical_score=0.9, started_at="2025-01-01T10:00:00.000Z", ended_at="2025-01-01T10:00:05.000Z"),
    ]
    processor = TrajectorySpanProcessor(db_path)
    processor.submit(records)
    processor.force_flush()
    processor.shutdown()


def test_export_then_import_gives_back_what_the_store_showed(tmp_path):
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    record_live(before)
    export_atif(before, tmp_path / "out")
    summary = import_paths([tmp_path / "out"], after)
    assert summary.ok
    assert store_view(after) == store_view(before)


def test_an_offset_time_survives_export_then_import_as_the_same_instant(db, tmp_path):
    assert import_paths([a_run_at(tmp_path, "abroad", "2025-10-16T16:30:00.250+02:00")], db).ok
    export_atif(db, tmp_path / "out")
    again = tmp_path / "again.db"
    assert import_paths([tmp_path / "out"], again).ok
    assert store_view(again) == store_view(db)
    found = only(again)
    assert (found.created_at, found.ended_at) == ("2025-10-16T14:30:00.250Z", "2025-10-16T14:30:00.250Z")
    assert [t.timestamp for t in found.turns] == ["2025-10-16T14:30:00.250Z"]


def test_export_import_export_writes_the_same_files(db, tmp_path):
    import_paths([DATA], db)
    first = sorted(export_atif(db, tmp_path / "first"))
    import_paths([tmp_path / "first"], tmp_path / "again.db")
    second = sorted(export_atif(tmp_path / "again.db", tmp_path / "second"))
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_text() for p in first] == [p.read_text() for p in second]
    assert store_view(tmp_path / "again.db") == store_view(db)


def test_a_recorded_trajectory_exported_imported_and_exported_again_gives_the_same_files(tmp_path):
    recorded, again = tmp_path / "recorded.db", tmp_path / "again.db"
    record_live(recorded)
    first = sorted(export_atif(recorded, tmp_path / "first"))
    assert import_paths([tmp_path / "first"], again).ok
    second = sorted(export_atif(again, tmp_path / "second"))
    assert [p.read_text() for p in first] == [p.read_text() for p in second]

# --- CLI ----------------------------------------------------------------------

def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_summarizes_and_exits_0_when_everything_was_imported(capsys, tmp_path):
    code, out, _ = run(capsys, "import", str(copy_to(tmp_path, FULL, DATA / "runs.jsonl")), "--db", "r.db")
    assert code == 0
    assert out.startswith("imported 3 document(s) from 2 file(s) into r.db: 4 trajectories, 7 turns")


def test_cli_import_lists_skipped_files_with_reasons_and_exits_1(capsys):
    code, out, _ = run(capsys, "import", str(DATA), "--db", "r.db")
    assert code == 1
    assert "skipped 4:" in out
    assert f"{BAD / 'non_sequential.json'}: step 3: step_id is 4, expected 3" in out


def test_cli_import_json_gives_each_skipped_file_once_with_a_reason_that_does_not_repeat_it(capsys):
    code, out, _ = run(capsys, "import", str(BAD / "non_sequential.json"), "--db", "r.db", "--json")
    assert code == 1
    assert json.loads(out)["skipped"] == [{
        "file": str(BAD / "non_sequential.json"),
        "reason": "step 3: step_id is 4, expected 3 (step_ids must run 1, 2, 3, ... in order)",
    }]


def test_cli_import_json_prints_the_summary(capsys):
    code, out, _ = run(capsys, "import", str(FULL), "--db", "r.db", "--spec", "s", "--agent", "a", "--json")
    summary = json.loads(out)
    assert (code, summary["imported"], summary["trajectories"], summary["turns"], summary["ok"]) == (0, 1, 2, 5, True)
    assert only("r.db", agent_name="a").spec_id == "s"


def test_cli_import_of_a_missing_path_is_a_usage_error(capsys):
    code, _, err = run(capsys, "import", "nowhere", "--db", "r.db")
    assert code == 2
    assert err.strip() == "ppp-otel: error: nowhere: no such file or directory"


def test_cli_export_atif_writes_files_and_lists_them_in_json(capsys, tmp_path):
    run(capsys, "import", str(FULL), "--db", "r.db")
    code, out, _ = run(capsys, "export-atif", "--db", "r.db", "--out", "out", "--json")
    files = json.loads(out)["files"]
    assert code == 0 and len(files) == 1
    check_atif(json.loads(Path(files[0]).read_text()))


def test_cli_export_atif_onto_a_file_says_out_names_a_directory(capsys, tmp_path):
    run(capsys, "import", str(FULL), "--db", "r.db")
    Path("mine.json").write_text("{}")
    code, _, err = run(capsys, "export-atif", "--db", "r.db", "--out", "mine.json")
    assert code == 2
    assert err.splitlines() == ["ppp-otel: error: --out mine.json: it is a file, not a directory; --out names "
                                "the directory to write the ATIF files into (made when missing)"]


def test_cli_export_atif_under_a_file_names_the_file_in_the_way(capsys, tmp_path):
    run(capsys, "import", str(FULL), "--db", "r.db")
    Path("mine.json").write_text("{}")
    code, _, err = run(capsys, "export-atif", "--db", "r.db", "--out", "mine.json/out")
    assert code == 2 and "--out mine.json/out: mine.json is a file, not a directory" in err


def test_cli_export_atif_that_matches_nothing_says_so_and_makes_no_directory(capsys, tmp_path):
    run(capsys, "import", str(FULL), "--db", "r.db")
    code, out, _ = run(capsys, "export-atif", "--db", "r.db", "--out", "out", "--spec", "nosuch", "--stage", "plan")
    assert code == 0
    assert out == "no trajectories to export of spec 'nosuch' of stage 'plan' in r.db: nothing written\n"
    assert not Path("out").exists()


def test_an_export_that_matches_nothing_makes_no_directory(db, tmp_path):
    import_paths([FULL], db)
    assert export_atif(db, tmp_path / "out", spec_id="nosuch") == []
    assert not (tmp_path / "out").exists()


def test_export_skips_a_trajectory_a_cleanup_deletes_while_it_runs(tmp_path, monkeypatch):
    from scoring_data import add_trajectory

    from ppp_otel.interchange.atif import exporter
    from ppp_otel.storage.sqlite import migrations as schema

    db_path = str(tmp_path / "runs.db")
    conn = schema.connect(db_path)
    first, second = add_trajectory(conn, "spec", "alpha"), add_trajectory(conn, "spec", "beta")
    conn.close()
    document = exporter.trajectory_document

    def delete_the_second_meanwhile(store, trajectory_id, **options):
        if trajectory_id == first:  # a cleanup in another process, once the list is made
            with closing(sqlite3.connect(db_path)) as other, other:
                other.execute("PRAGMA foreign_keys = ON")
                other.execute("DELETE FROM trajectories WHERE id = ?", (second,))
        return document(store, trajectory_id, **options)

    monkeypatch.setattr(exporter, "trajectory_document", delete_the_second_meanwhile)
    written = export_atif(db_path, tmp_path / "out")
    assert [json.loads(p.read_text())["agent"]["name"] for p in written] == ["alpha"]
