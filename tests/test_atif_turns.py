"""Which ATIF steps are turns: the rules live recording follows (ppp_otel.dialects.resolve).

An agent step is one model call. One whose output is only tool calls is no turn of its
own: its tool calls, and the questions asked through a question tool, go with the turn it
leads to; a trajectory that ends on such a step keeps it as a turn only if it asked the
user something. The same conversation recorded as spans and imported as ATIF gives the
same turns and questions.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import ppp_otel
from ppp_otel.cli import main
from ppp_otel.interchange.atif import export_atif, import_paths, validate

DATA = Path(__file__).parent / "data" / "atif"
#: A run shaped as Harbor's Claude Code converter writes one: a step per model call,
#: an empty message on the calls that only used tools, an AskUserQuestion call.
ASKS = DATA / "claude_code_asks.trajectory.json"
DRY_RUN_QUESTION = "Should --dry-run print the rsync command or run rsync with -n?"

pytestmark = pytest.mark.usefixtures("no_ambient_database")


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "runs.db"


def rows(db_path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql).fetchall()


def turns(db_path: Path) -> list[tuple]:
    return rows(db_path, "SELECT turn_number, prompt, response, token_count FROM trajectory_turns ORDER BY turn_number")


def questions(db_path: Path) -> list[tuple]:
    return rows(db_path, "SELECT t.turn_number, q.question_text, q.effort_level, q.source FROM trajectory_questions q "
                         "JOIN trajectory_turns t ON t.id = q.turn_id ORDER BY t.turn_number, q.id")


def extras(db_path: Path) -> list[dict]:
    return [json.loads(e) if e else {} for (e,) in rows(db_path, "SELECT extra FROM trajectory_turns ORDER BY turn_number")]


def tool_names(db_path: Path) -> list[list[str]]:
    return [[call["name"] for call in extra.get("tool_calls", [])] for extra in extras(db_path)]


def document(*steps: dict, version: str = "ATIF-v1.6") -> dict:
    return {"schema_version": version, "session_id": "run-1", "agent": {"name": "agent", "version": "1"},
            "steps": [{"step_id": n, **step} for n, step in enumerate(steps, 1)]}


def user(text: str) -> dict:
    return {"source": "user", "message": text}


def agent(message: str = "", *calls: tuple[str, dict], **fields) -> dict:
    step = {"source": "agent", "message": message, **fields}
    if calls:
        step["tool_calls"] = [{"tool_call_id": f"call_{name}_{i}", "function_name": name, "arguments": arguments}
                              for i, (name, arguments) in enumerate(calls)]
    return step


def write(tmp_path: Path, doc: dict, name: str = "run.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


# --- a step that only calls tools ---------------------------------------------------

def test_a_tool_only_step_folds_into_the_next_turn_with_its_tool_calls_and_tokens(db):
    assert import_paths([ASKS], db).ok
    assert turns(db) == [  # tokens: every model call of the exchange (1240 + 1390 + 1510 + 1540; 1655 + 1695)
        (1, "Add a --dry-run flag to scripts/deploy.sh.",
         "Added --dry-run: the script runs rsync with -n and copies nothing.", 5680),
        (2, "Thanks. Make it the default on CI.", "Done: CI now runs the script with DRY_RUN=1.", 3350),
    ]
    assert tool_names(db) == [["Read", "AskUserQuestion", "Edit"], ["Edit"]]


def test_the_folded_steps_are_kept_verbatim_in_the_turn_extra(db):
    import_paths([ASKS], db)
    first = extras(db)[0]["atif"]
    assert [s["step_id"] for s in first["context_steps"]] == [1, 2, 3, 4]
    assert first["context_steps"][1]["observation"]["results"][0]["source_call_id"] == "toolu_01Read"
    assert first["agent_step"]["step_id"] == 5


def test_the_import_summary_counts_turns_and_the_steps_that_only_called_tools(db):
    summary = import_paths([ASKS], db)
    assert (summary.turns, summary.tool_steps) == (2, 5)


def test_cli_import_says_how_many_steps_only_called_tools(capsys):
    assert main(["import", str(ASKS), "--db", "r.db"]) == 0
    assert capsys.readouterr().out.startswith(
        "imported 1 document(s) from 1 file(s) into r.db: 1 trajectories, 2 turns (2 new, 0 already there); "
        "5 agent step(s) only called tools (no turns of their own)")


def test_a_step_with_a_message_and_tool_calls_is_a_turn_with_its_tool_calls(db, tmp_path):
    doc = document(user("Price of GOOGL?"), agent("I will look it up.", ("financial_search", {"ticker": "GOOGL"})),
                   agent("GOOGL trades at $185.35."))
    import_paths([write(tmp_path, doc)], db)
    assert [(n, r) for n, _, r, _ in turns(db)] == [(1, "I will look it up."), (2, "GOOGL trades at $185.35.")]
    assert tool_names(db) == [["financial_search"], []]


def test_an_agent_step_with_an_empty_message_and_no_tool_calls_is_a_turn_without_response(db, tmp_path):
    # As a model call whose reply is empty is recorded from its span.
    import_paths([write(tmp_path, document(user("Anything else?"), agent("")))], db)
    assert [(n, p, r) for n, p, r, _ in turns(db)] == [(1, "Anything else?", None)]


def test_harbors_executed_placeholder_message_is_no_reply(db, tmp_path):
    # Harbor's Claude Code converter of the ATIF-v1.2 era wrote "Executed <tool> <call id>"
    # as the message of a step that only called a tool.
    doc = document(user("Fix the test."),
                   {"source": "agent", "message": "Executed Bash toolu_9", "tool_calls": [
                       {"tool_call_id": "toolu_9", "function_name": "Bash", "arguments": {"command": "pytest"}}]},
                   agent("Fixed: the test passes."), version="ATIF-v1.2")
    import_paths([write(tmp_path, doc)], db)
    assert [(p, r) for _, p, r, _ in turns(db)] == [("Fix the test.", "Fixed: the test passes.")]
    assert tool_names(db) == [["Bash"]]


def test_a_trajectory_ending_on_tool_calls_that_ask_nothing_has_no_turn_for_them(db, tmp_path):
    doc = document(user("Fix the test."), agent("Fixed."), agent("", ("Bash", {"command": "git status"})))
    import_paths([write(tmp_path, doc)], db)
    assert [(p, r) for _, p, r, _ in turns(db)] == [("Fix the test.", "Fixed.")]
    assert [s["step_id"] for s in extras(db)[0]["atif"]["after_steps"]] == [3]


# --- questions asked through a tool ---------------------------------------------------

def test_an_ask_user_question_call_is_an_explicit_question_of_its_turn_with_an_effort(db):
    import_paths([ASKS], db)
    assert questions(db) == [(1, DRY_RUN_QUESTION, "low", "explicit")]


@pytest.mark.parametrize("tool, arguments", [
    ("AskUserQuestion", {"questions": [{"question": "Which shell were you in when it failed?", "header": "Shell",
                                        "options": [{"label": "bash"}, {"label": "zsh"}], "multiSelect": False}]}),
    ("ask_user", {"question": "Which shell were you in when it failed?"}),
    ("request_user_input", {"questions": [{"id": "shell", "question": "Which shell were you in when it failed?"}]}),
])
def test_each_default_question_tool_asks_the_question_in_its_arguments(db, tmp_path, tool, arguments):
    doc = document(user("The build fails."), agent("", (tool, arguments)), agent("Thanks, fixed for zsh."))
    import_paths([write(tmp_path, doc)], db)
    [(number, text, effort, source)] = questions(db)
    assert (number, text, source) == (1, "Which shell were you in when it failed?", "explicit")
    assert effort in ("low", "medium", "high")


def test_a_question_asked_through_a_tool_in_a_turns_own_step_is_a_question_of_that_turn(db, tmp_path):
    doc = document(user("Deploy it."), agent("Before I deploy:", ("ask_user", {"question": "Staging or production?"})))
    import_paths([write(tmp_path, doc)], db)
    assert [(n, t, s) for n, t, _, s in questions(db)] == [(1, "Staging or production?", "explicit")]


def test_a_configured_question_tool_name_counts(db, tmp_path):
    doc = document(user("The build fails."), agent("", ("consult_human", {"text": "Which branch?"})), agent("Fixed."))
    path = write(tmp_path, doc)
    import_paths([path], db, question_tools=["consult_human"])
    assert [(t, s) for _, t, _, s in questions(db)] == [("Which branch?", "explicit")]


def test_the_configured_question_tools_replace_the_defaults(db, tmp_path):
    doc = document(user("The build fails."), agent("", ("ask_user", {"question": "Which branch?"})), agent("Fixed."))
    import_paths([write(tmp_path, doc)], db, question_tools=["consult_human"])
    assert questions(db) == []


def test_cli_import_takes_the_question_tools_of_the_config(capsys, tmp_path, monkeypatch):
    config = tmp_path / "ppp.toml"
    config.write_text('[ppp.trajectory]\nquestion_tools = ["consult_human"]\n')
    monkeypatch.setenv("PPP_OTEL_CONFIG", str(config))
    doc = document(user("The build fails."), agent("", ("consult_human", {"text": "Which branch?"})), agent("Fixed."))
    assert main(["import", str(write(tmp_path, doc)), "--db", "r.db"]) == 0
    assert [(t, s) for _, t, _, s in questions(Path("r.db"))] == [("Which branch?", "explicit")]


def test_a_trajectory_ending_on_a_tool_only_step_that_asked_keeps_that_turn(db, tmp_path):
    doc = document(user("Deploy it."), agent("", ("Read", {"file_path": "deploy.yml"})),
                   agent("", ("AskUserQuestion", {"questions": [{"question": "Staging or production?"}]})))
    import_paths([write(tmp_path, doc)], db)
    assert [(n, p, r) for n, p, r, _ in turns(db)] == [(1, "Deploy it.", None)]  # it said nothing but asked
    assert tool_names(db) == [["Read", "AskUserQuestion"]]
    assert [(n, t, s) for n, t, _, s in questions(db)] == [(1, "Staging or production?", "explicit")]


def test_a_user_message_after_a_trajectorys_last_tool_calls_is_a_last_turn_without_response(db, tmp_path):
    doc = document(user("Fix it."), agent("Fixed."), agent("", ("Bash", {"command": "make"})), user("Thanks."))
    import_paths([write(tmp_path, doc)], db)
    assert [(n, p, r) for n, p, r, _ in turns(db)] == [(1, "Fix it.", "Fixed."), (2, "Thanks.", None)]


def test_a_tool_call_that_is_not_an_object_skips_the_document_naming_the_step(db, tmp_path):
    doc = document(user("Fix it."), {"source": "agent", "message": "", "tool_calls": ["Bash"]})
    [(_, why)] = import_paths([write(tmp_path, doc)], db).skipped
    assert why == "step 2: tool_calls[0] must be an object, got str"


# --- the same conversation by both paths ----------------------------------------------

def record_as_spans(doc: dict, db_path: Path) -> None:
    """The document's conversation as a live agent's model calls: a GenAI chat span per
    agent step, each sent the conversation so far, recorded by ppp_otel.register()."""
    provider = TracerProvider()
    ppp_otel.register(db_path, phoenix=False, set_global=False, tracer_provider=provider, env={})
    tracer = provider.get_tracer("agent")
    history: list[dict] = []
    with ppp_otel.trajectory("spec", "agent", tracer_provider=provider):
        for step in doc["steps"]:
            if step["source"] in ("user", "system"):
                history.append({"role": step["source"], "parts": [{"type": "text", "content": step["message"]}]})
                continue
            parts = [{"type": "text", "content": step["message"]}] if step["message"] else []
            parts += [{"type": "tool_call", "id": call["tool_call_id"], "name": call["function_name"],
                       "arguments": call["arguments"]} for call in step.get("tool_calls", [])]
            with tracer.start_as_current_span("chat claude-sonnet-4-5") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.input.messages", json.dumps(history))
                span.set_attribute("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": parts}]))
                metrics = step.get("metrics") or {}
                if metrics:
                    span.set_attribute("gen_ai.usage.input_tokens", metrics["prompt_tokens"])
                    span.set_attribute("gen_ai.usage.output_tokens", metrics["completion_tokens"])
            history.append({"role": "assistant", "parts": parts})
            for result in (step.get("observation") or {}).get("results", []):
                history.append({"role": "tool", "parts": [
                    {"type": "tool_call_response", "id": result["source_call_id"], "response": result["content"]}]})
    provider.shutdown()


def ending_on_a_question() -> dict:
    doc = copy.deepcopy(json.loads(ASKS.read_text()))
    del doc["steps"][4:]  # the run goes as far as its first Edit call, then ends asking something more
    doc["steps"].append({"step_id": 5, "source": "agent", "message": "", "tool_calls": [
        {"tool_call_id": "toolu_06Ask", "function_name": "ask_user",
         "arguments": {"question": "Shall I also update the README?"}}]})
    return doc


def behind_a_system_prompt() -> dict:
    """A system prompt and two user messages before the first reply, which asks."""
    return document({"source": "system", "message": "You are a careful coding agent."}, user("The build fails."),
                    user("Please fix it."), agent("Which branch are you on?"), user("main"), agent("Fixed on main."))


def test_a_turns_prompt_is_the_users_latest_message_not_the_system_prompt_or_earlier_ones(db, tmp_path):
    assert import_paths([write(tmp_path, behind_a_system_prompt())], db).ok
    assert [t[1] for t in turns(db)] == ["Please fix it.", "main"]
    context = extras(db)[0]["atif"]["context_steps"]
    assert [step["source"] for step in context] == ["system", "user", "user"]  # kept, for export


@pytest.mark.parametrize("doc", [json.loads(ASKS.read_text()), ending_on_a_question(), behind_a_system_prompt()],
                         ids=["claude-code-run", "ending-on-a-question", "behind-a-system-prompt"])
def test_the_same_conversation_as_spans_and_as_atif_gives_the_same_turns_and_questions(tmp_path, doc):
    spans, atif = tmp_path / "spans.db", tmp_path / "atif.db"
    record_as_spans(doc, spans)
    assert import_paths([write(tmp_path, doc)], atif).ok
    assert turns(atif) == turns(spans)
    assert questions(atif) == questions(spans)
    assert [e.get("tool_calls") for e in extras(atif)] == [e.get("tool_calls") for e in extras(spans)]
    assert questions(atif)  # the conversation asked something


# --- export and import -----------------------------------------------------------------

def store(db_path: Path) -> list[tuple]:
    return (rows(db_path, "SELECT turn_number, prompt, response, token_count, latency_ms, timestamp, trace_id, span_id "
                          "FROM trajectory_turns ORDER BY turn_number") + questions(db_path))


@pytest.mark.parametrize("doc", [
    json.loads(ASKS.read_text()),
    ending_on_a_question(),
    document(user("Fix it."), agent("Fixed."), agent("", ("Bash", {"command": "make"})), user("Thanks."),
             agent("", ("Bash", {"command": "make test"}))),
], ids=["claude-code-run", "ending-on-a-question", "tool-calls-after-the-last-reply"])
def test_export_then_import_of_folded_steps_gives_the_same_rows_and_the_same_file(tmp_path, doc):
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    import_paths([write(tmp_path, doc)], first)
    [exported] = export_atif(first, tmp_path / "out1")
    assert import_paths([exported], second).ok
    assert store(second) == store(first)
    [again] = export_atif(second, tmp_path / "out2")
    assert again.read_text() == exported.read_text()
    assert [s["step_id"] for s in json.loads(exported.read_text())["steps"]] == [s["step_id"] for s in doc["steps"]]


# --- export of a live recording ---------------------------------------------------------

def test_export_of_a_live_recording_writes_each_turns_tool_calls_on_its_agent_step(tmp_path):
    spans = tmp_path / "spans.db"
    record_as_spans(json.loads(ASKS.read_text()), spans)
    [exported] = export_atif(spans, tmp_path / "out")
    doc = json.loads(exported.read_text())
    validate(doc, "export")
    steps = [s for s in doc["steps"] if s["source"] == "agent"]
    assert [[c["function_name"] for c in s.get("tool_calls", [])] for s in steps] == tool_names(spans)
    first = steps[0]["tool_calls"][0]
    stored = extras(spans)[0]["tool_calls"][0]
    assert (first["tool_call_id"], first["arguments"]) == (stored["id"], json.loads(stored["arguments"]))


def test_a_live_recordings_export_imports_as_the_same_turns_questions_and_tool_calls(tmp_path):
    spans, again = tmp_path / "spans.db", tmp_path / "again.db"
    record_as_spans(json.loads(ASKS.read_text()), spans)
    [exported] = export_atif(spans, tmp_path / "out")
    assert import_paths([exported], again).ok
    assert turns(again) == turns(spans)
    assert questions(again) == questions(spans)
    assert [e.get("tool_calls") for e in extras(again)] == [e.get("tool_calls") for e in extras(spans)]


def test_a_tool_call_without_id_or_json_arguments_exports_as_a_valid_atif_tool_call(db, tmp_path):
    provider = TracerProvider()
    ppp_otel.register(db, phoenix=False, set_global=False, tracer_provider=provider, env={})
    tracer = provider.get_tracer("agent")
    # OpenLLMetry's indexed form: a call that only ran a tool (no id, arguments not JSON), then the reply.
    with ppp_otel.trajectory("spec", "agent", tracer_provider=provider):
        for completion in ({"tool_calls.0.name": "run", "tool_calls.0.arguments": "not json"}, {"content": "Done."}):
            with tracer.start_as_current_span("chat m") as span:
                span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.prompt.0.role": "user",
                                     "gen_ai.prompt.0.content": "Run it", "gen_ai.completion.0.role": "assistant"})
                span.set_attributes({f"gen_ai.completion.0.{k}": v for k, v in completion.items()})
    provider.shutdown()
    assert extras(db)[0]["tool_calls"] == [{"name": "run", "arguments": "not json"}]
    [exported] = export_atif(db, tmp_path / "out")
    doc = json.loads(exported.read_text())
    validate(doc, "export")
    [step] = [s for s in doc["steps"] if s["source"] == "agent"]
    assert step["tool_calls"] == [{"tool_call_id": "call_1_1", "function_name": "run", "arguments": {"text": "not json"}}]
