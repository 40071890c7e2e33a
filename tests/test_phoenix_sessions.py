"""What a person sees in Phoenix: sessions with the conversation, the rewards, the judgments.

Against a real ``phoenix serve`` (the session fixture), read back through
the APIs Phoenix's own UI reads: GraphQL for the session list, REST for
annotations. Each test records into a project of its own.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from support import wait_for
import ppp_otel
from ppp_otel.publish.phoenix_annotations import annotate_consensus
from ppp_otel.cli import main
from ppp_otel.scoring.consensus import Weights, consensus
from ppp_otel.conventions import default_session_id
from ppp_otel.publish.phoenix_sender import SPAN_ANNOTATIONS, PhoenixAnnotationSender

pytestmark = pytest.mark.needs_phoenix


def unique_project() -> str:
    return f"sessions-{uuid.uuid4().hex[:10]}"


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def graphql(phoenix, query: str, **variables) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{phoenix.url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert not answer.get("errors"), answer
    return answer["data"]


SESSIONS = """
query {
  projects { edges { node { id name
    sessions(first: 50) { edges { node {
      sessionId firstInput { value } lastOutput { value } tokenUsage { total }
      sessionAnnotations { name score label }
    } } }
  } } }
}"""


def sessions_of(phoenix, project: str, expected: int, *, annotations: int = 0) -> dict[str, dict]:
    """The project's sessions by session id, once ``expected`` of them (with the annotations) show."""
    def fetch():
        for edge in graphql(phoenix, SESSIONS)["projects"]["edges"]:
            if edge["node"]["name"] == project:
                found = {s["node"]["sessionId"]: s["node"] for s in edge["node"]["sessions"]["edges"]}
                if len(found) >= expected and all(
                    len(s["sessionAnnotations"]) >= annotations for s in found.values()
                ):
                    return found
        return None

    return wait_for(fetch, timeout_s=90) or {}


def span_annotations(phoenix, project: str, span_ids: list[str]) -> list[dict]:
    query = urllib.parse.urlencode([("span_ids", s) for s in span_ids] + [("limit", 1000)])
    try:
        return get_json(f"{phoenix.url}/v1/projects/{project}/span_annotations?{query}")["data"]
    except urllib.error.HTTPError:  # the spans are not there yet
        return []


def session_annotations(phoenix, project: str, session_ids: list[str]) -> list[dict]:
    query = urllib.parse.urlencode([("session_ids", s) for s in session_ids] + [("limit", 1000)])
    try:
        return get_json(f"{phoenix.url}/v1/projects/{project}/session_annotations?{query}")["data"]
    except urllib.error.HTTPError:
        return []


def turn_span_ids(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT span_id FROM trajectory_turns ORDER BY id")]


def record(db_path, project: str, phoenix) -> tuple:
    """One trajectory of two turns: a question that makes the user work, then a reply with two questions."""
    provider = ppp_otel.register(db_path, phoenix=phoenix.url, project_name=project, set_global=False, env={})
    with ppp_otel.trajectory("spec-s", "alpha", preferences=["max_questions_per_turn(limit=1)"],
                             tracer_provider=provider) as traj:
        traj.set_technical_score(0.8)
        with ppp_otel.turn("The upload test fails one run in ten.", tracer_provider=provider) as t:
            t.respond("Could you grep the CI logs for the failing request id?", prompt_tokens=20, completion_tokens=12)
            t.question("Could you grep the CI logs for the failing request id?", effort="high")
        with ppp_otel.turn("Here they are.", tracer_provider=provider) as t:
            t.respond("Should I add a retry? Should I add a readiness wait?", prompt_tokens=30, completion_tokens=10)
    provider.shutdown()
    return traj


def test_a_recorded_trajectory_shows_its_first_input_last_output_and_tokens_as_a_session(db_path, phoenix):
    project = unique_project()
    traj = record(db_path, project, phoenix)
    session = sessions_of(phoenix, project, 1)[traj.session_id]
    assert session["firstInput"]["value"] == "The upload test fails one run in ten."
    assert session["lastOutput"]["value"] == "Should I add a retry? Should I add a readiness wait?"
    assert session["tokenUsage"]["total"] == 72


def test_each_turn_carries_its_judgment_as_span_annotations(db_path, phoenix):
    project = unique_project()
    record(db_path, project, phoenix)
    first, second = turn_span_ids(db_path)
    found = wait_for(lambda: (a := span_annotations(phoenix, project, [first, second])) and len(a) >= 5 and a,
                     timeout_s=40)
    by = {(a["span_id"], a["name"]): a["result"] for a in found}
    assert by[(first, "ppp.questions")]["score"] == 1 and by[(first, "ppp.questions")]["label"] == "high"
    assert by[(first, "ppp.violations")]["score"] == 0 and by[(first, "ppp.violations")]["label"] == "none"
    assert by[(second, "ppp.questions")]["score"] == 2
    violation = by[(second, "ppp.violation.max_questions_per_turn")]
    assert violation["label"] == "major"
    assert "expected: at most 1 question per turn; actual: 2 questions" in violation["explanation"]


def test_consensus_rewards_are_session_annotations_read_back_by_rest(db_path, phoenix):
    project = unique_project()
    traj = record(db_path, project, phoenix)
    result = consensus(db_path, "spec-s", weights=Weights(0.7, 0.3))
    summary = annotate_consensus(result, phoenix.url, wait_s=20)
    assert summary.ok, summary.failed
    found = session_annotations(phoenix, project, [traj.session_id])
    scores = {a["name"]: a["result"]["score"] for a in found}
    (scored,) = result.trajectories
    assert scores == {"ppp.r_proact": scored.r_proact, "ppp.r_pers": scored.r_pers,
                      "ppp.final": result.agent("alpha").final}
    assert {a["identifier"] for a in found} == {"ppp-otel:spec-s"}


def test_annotating_twice_updates_instead_of_duplicating(db_path, phoenix):
    project = unique_project()
    traj = record(db_path, project, phoenix)
    first, _ = turn_span_ids(db_path)
    wait_for(lambda: len(span_annotations(phoenix, project, [first])) >= 2, timeout_s=40)
    result = consensus(db_path, "spec-s", weights=Weights(0.7, 0.3))
    for _ in range(2):
        assert annotate_consensus(result, phoenix.url, wait_s=20).ok
    # The same judgment sent again, as a re-judged turn would be.
    sent_before = [{key: a[key] for key in ("span_id", "name", "annotator_kind", "identifier", "result")}
                   for a in span_annotations(phoenix, project, [first])]
    sender = PhoenixAnnotationSender(phoenix.url)
    sender.submit(SPAN_ANNOTATIONS, sent_before)
    assert sender.force_flush(20_000)
    sender.shutdown()
    assert sender.sent >= 2 and sender.failed == 0
    names = [a["name"] for a in session_annotations(phoenix, project, [traj.session_id])]
    assert sorted(names) == ["ppp.final", "ppp.r_pers", "ppp.r_proact"]
    turn_names = [a["name"] for a in span_annotations(phoenix, project, [first])]
    assert sorted(turn_names) == ["ppp.questions", "ppp.violations"]


def test_the_demo_with_phoenix_shows_a_session_per_trajectory_with_its_conversation_and_scores(tmp_path, phoenix, capsys):
    project = unique_project()
    db = tmp_path / "demo.db"
    assert main(["demo", "--db", str(db), "--phoenix", phoenix.url, "--project", project, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["phoenix"]["annotations"]["failed"] == []
    assert out["phoenix"]["judgments"]["failed"] == 0, json.dumps(out["phoenix"]["judgments"])
    # Three agents, two stages, two runs: twelve trajectories, twelve sessions.
    sessions = sessions_of(phoenix, project, 12, annotations=3)
    assert len(sessions) == 12
    careful = [s for sid, s in sessions.items() if sid.startswith("careful-agent-")
               and s["firstInput"]["value"].startswith("The test_upload test fails")]
    assert len(careful) == 2  # its implement stage in each run
    assert all(s["lastOutput"]["value"].startswith("Done: test_upload now retries") for s in careful)
    labels = [{a["name"]: a["label"] for a in s["sessionAnnotations"]}["ppp.final"] for s in sessions.values()]
    assert labels.count("best") == 4  # one best agent per stage and run
    assert {t["agent_name"] for t in out["trajectories"]} == {"careful-agent", "curious-agent", "hasty-agent"}


def test_consensus_on_trajectories_phoenix_never_got_says_to_export_and_fails(db_path, phoenix, capsys):
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    with ppp_otel.trajectory("spec-offline", "alpha", tracer_provider=provider):
        with ppp_otel.turn("p", tracer_provider=provider) as t:
            t.respond("r")
    provider.shutdown()
    code = main(["consensus", "--db", str(db_path), "--spec", "spec-offline", "--phoenix", phoenix.url,
                 "--wait", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"ppp-otel export --db {db_path} --to {phoenix.url} --spec spec-offline" in err


def test_consensus_after_export_annotates_the_sessions(db_path, phoenix, capsys):
    project = unique_project()
    provider = ppp_otel.register(db_path, phoenix=False, set_global=False, env={})
    with ppp_otel.trajectory("spec-late", "alpha", tracer_provider=provider) as traj:
        with ppp_otel.turn("first prompt", tracer_provider=provider) as t:
            t.respond("last answer")
    provider.shutdown()
    assert main(["export", "--db", str(db_path), "--to", phoenix.url, "--project", project]) == 0
    assert main(["consensus", "--db", str(db_path), "--spec", "spec-late", "--phoenix", phoenix.url,
                 "--wait", "20"]) == 0
    session = sessions_of(phoenix, project, 1, annotations=3)[default_session_id("alpha", traj.trace_id)]
    assert (session["firstInput"]["value"], session["lastOutput"]["value"]) == ("first prompt", "last answer")


TURN_MESSAGES = """
query {
  projects { edges { node { name
    spans(first: 50) { edges { node { name attributes } } }
  } } }
}"""


def turn_messages_in_phoenix(phoenix, project: str, expected: int) -> list[tuple[list, list]]:
    """(input messages, output messages) of each turn span Phoenix holds, as Phoenix parsed them."""
    def fetch():
        for edge in graphql(phoenix, TURN_MESSAGES)["projects"]["edges"]:
            if edge["node"]["name"] == project:
                turns = [json.loads(s["node"]["attributes"]) for s in edge["node"]["spans"]["edges"]
                         if s["node"]["name"] == "ppp.turn"]
                if len(turns) >= expected:
                    return [([m["message"] for m in a["llm"].get("input_messages", [])],
                             [m["message"] for m in a["llm"].get("output_messages", [])]) for a in turns]
        return None

    return wait_for(fetch, timeout_s=90) or []


FIRST_TURN = ([{"role": "user", "content": "The upload test fails one run in ten."}],
              [{"role": "assistant", "content": "Could you grep the CI logs for the failing request id?"}])


def test_a_turn_shows_in_phoenix_as_a_user_message_and_the_assistants_reply(db_path, phoenix):
    project = unique_project()
    record(db_path, project, phoenix)
    assert FIRST_TURN in turn_messages_in_phoenix(phoenix, project, 2)


def test_an_exported_turn_shows_in_phoenix_as_the_same_two_messages(db_path, tmp_path, phoenix, capsys):
    project = unique_project()
    provider = ppp_otel.register(db_path, set_global=False, env={})  # recorded without Phoenix
    with ppp_otel.trajectory("spec-s", "alpha", tracer_provider=provider):
        with ppp_otel.turn("The upload test fails one run in ten.", tracer_provider=provider) as t:
            t.respond("Could you grep the CI logs for the failing request id?")
    provider.shutdown()
    assert main(["export", "--db", str(db_path), "--to", phoenix.url, "--project", project]) == 0
    capsys.readouterr()
    assert turn_messages_in_phoenix(phoenix, project, 1) == [FIRST_TURN]


def test_consensus_on_a_trajectory_with_its_own_session_id_annotates_its_span_and_says_the_session_is_not(
        db_path, phoenix, capsys):
    project = unique_project()
    provider = ppp_otel.register(db_path, phoenix=phoenix.url, project_name=project, set_global=False, env={})
    with ppp_otel.trajectory("spec-own", "alpha", session_id="conversation-7", tracer_provider=provider) as traj:
        with ppp_otel.turn("Fix it", tracer_provider=provider) as t:
            t.respond("Which runner do you use?")
    provider.shutdown()
    assert main(["consensus", "--db", str(db_path), "--spec", "spec-own", "--phoenix", phoenix.url,
                 "--wait", "20", "--json"]) == 0
    out, err = capsys.readouterr()
    annotations = json.loads(out)["annotations"]
    assert annotations["annotated"] == [1] and annotations["failed"] == []
    assert [s["trajectory_id"] for s in annotations["span_only"]] == [1]
    assert "export" not in err and "the session is not annotated" in err  # the spans are in Phoenix
    assert wait_for(lambda: {a["name"] for a in span_annotations(phoenix, project, [traj.span_id])}
                    >= {"ppp.final", "ppp.r_proact", "ppp.r_pers"})
