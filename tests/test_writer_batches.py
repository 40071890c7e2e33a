"""TrajectoryWriter: large batches go in as a few multi-row statements, exactly."""

from contextlib import closing

import pytest

from ppp_otel.storage.sqlite import migrations as schema
from ppp_otel.model import Question, Violation
from ppp_otel.records import TrajectoryRecord, TurnRecord
from ppp_otel.storage.sqlite.writer import TrajectoryWriter

TRAJ = TrajectoryRecord("a" * 32, "b" * 16, "spec", "agent")


def turn(i, number=None, **kw):
    return TurnRecord("a" * 32, f"{i:016x}", TRAJ.key, i if number is None else number,
                      f"prompt {i}", f"response {i}", **kw)


def test_a_batch_of_300_turns_keeps_every_turn_question_and_violation(db_path):
    turns = [turn(i, questions=[Question(f"q{i}?", "low")] if i % 3 == 0 else [],
                  violations=[Violation("brevity", "short", "long", "minor")] if i % 7 == 0 else [])
             for i in range(1, 301)]
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        outcome = writer.write(turns)
        stored = conn.execute("SELECT turn_number, prompt FROM trajectory_turns ORDER BY turn_number").fetchall()
        questions = conn.execute(
            "SELECT t.turn_number, q.question_text FROM trajectory_questions q "
            "JOIN trajectory_turns t ON t.id = q.turn_id ORDER BY t.turn_number").fetchall()
        violations = conn.execute("SELECT count(*) FROM trajectory_violations").fetchone()[0]
    assert outcome.turns == 300 and not outcome.rejected
    assert stored == [(i, f"prompt {i}") for i in range(1, 301)]
    assert questions == [(i, f"q{i}?") for i in range(3, 301, 3)]
    assert violations == len(range(7, 301, 7))


def test_one_clashing_turn_number_in_a_large_batch_costs_only_that_turn(db_path):
    turns = [turn(i) for i in range(1, 101)]
    turns[50] = turn(51, number=7)  # turn 7's number again
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        outcome = writer.write(turns)
        stored = conn.execute("SELECT count(*) FROM trajectory_turns").fetchone()[0]
    assert outcome.turns == 99 and [r.span_id for r, _ in outcome.rejected] == [f"{51:016x}"]
    assert stored == 99


def test_unnumbered_turns_in_one_batch_get_consecutive_numbers(db_path):
    turns = [turn(i, number=None) for i in range(1, 6)]
    for t in turns:
        t.turn_number = None
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        writer.write(turns)
        numbers = [n for (n,) in conn.execute("SELECT turn_number FROM trajectory_turns ORDER BY id")]
    assert numbers == [1, 2, 3, 4, 5]


def _questions_by_turn(conn):
    return conn.execute(
        "SELECT t.span_id, q.question_text FROM trajectory_questions q "
        "JOIN trajectory_turns t ON t.id = q.turn_id ORDER BY q.id").fetchall()


def test_questions_and_violations_of_unnumbered_turns_are_on_their_own_turns(db_path):
    turns = [turn(i, questions=[Question(f"q{i}?", "low")], violations=[Violation("brevity", "s", f"v{i}", "minor")])
             for i in range(1, 6)]
    for t in turns:
        t.turn_number = None
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        writer.write([turn(100)])
        writer.write(turns)
        questions = _questions_by_turn(conn)
        violations = conn.execute(
            "SELECT t.span_id, v.actual FROM trajectory_violations v "
            "JOIN trajectory_turns t ON t.id = v.turn_id ORDER BY v.id").fetchall()
    assert questions == [(f"{i:016x}", f"q{i}?") for i in range(1, 6)]
    assert violations == [(f"{i:016x}", f"v{i}") for i in range(1, 6)]


def test_a_redelivered_turn_in_a_batch_leaves_the_questions_after_it_on_their_own_turns(db_path):
    first = turn(1, questions=[Question("q1?", "low")])
    batch = [turn(2, questions=[Question("q2?", "low")]), first, turn(3, questions=[Question("q3?", "low")])]
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ, first])
        outcome = writer.write(batch)
        questions = _questions_by_turn(conn)
    assert outcome.turns == 2 and outcome.duplicates == 1
    assert questions == [(f"{1:016x}", "q1?"), (f"{2:016x}", "q2?"), (f"{3:016x}", "q3?")]


def test_turns_in_a_table_made_with_autoincrement_never_reuse_a_deleted_turns_id(db_path):
    with closing(schema.connect(db_path)) as conn:
        conn.execute("DROP TABLE trajectory_turns")
        conn.execute("""CREATE TABLE trajectory_turns (
            id INTEGER PRIMARY KEY AUTOINCREMENT, trajectory_id INTEGER NOT NULL REFERENCES trajectories(id),
            turn_number INTEGER NOT NULL, prompt TEXT, response TEXT, token_count INTEGER, latency_ms REAL,
            timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), trace_id TEXT, span_id TEXT,
            extra TEXT, judged_by TEXT, UNIQUE (trajectory_id, turn_number), UNIQUE (trace_id, span_id))""")
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ, *(turn(i) for i in range(1, 11))])
        conn.execute("DELETE FROM trajectory_turns WHERE turn_number > 5")
        writer.write([turn(20, questions=[Question("q?", "low")]), turn(21)])
        ids = [i for (i,) in conn.execute("SELECT id FROM trajectory_turns WHERE turn_number >= 20 ORDER BY id")]
        questions = _questions_by_turn(conn)
    assert ids == [11, 12]
    assert questions == [(f"{20:016x}", "q?")]


def test_turns_past_the_largest_rowid_are_stored_with_their_questions(db_path):
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ, turn(1)])
        conn.execute("UPDATE trajectory_turns SET id = ?", (2**63 - 1,))
        outcome = writer.write([turn(i, questions=[Question(f"q{i}?", "low")]) for i in range(2, 5)])
        questions = _questions_by_turn(conn)
    assert outcome.turns == 3 and not outcome.rejected
    assert questions == [(f"{i:016x}", f"q{i}?") for i in range(2, 5)]


def test_a_value_that_cannot_be_bound_is_named_by_its_place_among_the_turns_values(db_path):
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        outcome = writer.write([turn(1), turn(2, token_count=[1, 2])])
    # token_count is the 8th value of a turn's row: the reason says so, whatever ids the writer passes.
    assert [reason for _, reason in outcome.rejected] == [
        f"turn {2:016x}: Error binding parameter 8: type 'list' is not supported"]


def _numbers(conn):
    return [n for (n,) in conn.execute("SELECT turn_number FROM trajectory_turns ORDER BY id")]


def test_a_turn_without_a_number_follows_the_largest_before_it_in_the_same_batch(db_path):
    other = TrajectoryRecord("c" * 32, "d" * 16, "spec", "agent")
    batch = [turn(1, number=5), turn(2), turn(3, number=2), turn(4),
             TurnRecord("c" * 32, "e" * 16, other.key, None, "p", "r"), turn(5)]
    for i in (1, 3, 5):
        batch[i].turn_number = None
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ, other])
        outcome = writer.write(batch)
        numbers = _numbers(conn)
    assert outcome.turns == 6 and not outcome.rejected
    assert numbers == [5, 6, 2, 7, 1, 8]


def test_a_turn_without_a_number_gets_one_more_than_the_largest_stored_even_below_one(db_path):
    later = turn(2)
    later.turn_number = None
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ, turn(1, number=-3)])
        writer.write([later])
        numbers = _numbers(conn)
    assert numbers == [-3, -2]


def test_a_turn_number_given_as_text_is_stored_as_a_number_and_counted_from(db_path):
    later = turn(2)
    later.turn_number = None
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        outcome = writer.write([turn(1, number="3"), later])
        numbers = _numbers(conn)
    assert outcome.turns == 2 and not outcome.rejected
    assert numbers == [3, 4]


def test_a_batch_of_the_default_buffer_size_is_one_statement_a_table(db_path):
    statements = []
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        conn.set_trace_callback(statements.append)
        writer.write([turn(i, questions=[Question(f"q{i}?", "low")] if i < 8 else []) for i in range(1, 11)])
    inserts = [s.split("(")[0].split()[-1] for s in statements if s.lstrip().startswith("INSERT")]
    assert inserts == ["trajectory_turns", "trajectory_questions"]


def test_a_turns_extra_is_stored_as_json_dumps_writes_it(db_path):
    import json

    extra = {"tool_calls": [{"name": "run_tests", "arguments": {"path": "tests/ünï"}}], "n": 1.5, "none": None}
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ, turn(1, extra=extra)])
        stored = conn.execute("SELECT extra FROM trajectory_turns").fetchone()[0]
    assert stored == json.dumps(extra, ensure_ascii=False)


def test_the_next_turn_id_and_a_trajectorys_largest_number_are_found_without_scanning_the_turns(db_path):
    from ppp_otel.storage.sqlite import writer

    with closing(schema.connect(db_path)) as conn:
        plans = [detail for sql, params in ((writer._NEXT_TURN_ID, TRAJ.key), (writer._LARGEST_NUMBER, (1,)))
                 for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert not [p for p in plans if p.startswith("SCAN")], plans


def test_in_a_batch_where_some_turns_have_an_extra_each_keeps_its_own(db_path):
    import json

    extras = [{"tool_calls": [{"name": "run"}]} if i % 4 == 0 else ({} if i % 4 == 1 else None) for i in range(1, 41)]
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        writer.write([turn(i, extra=extra) for i, extra in enumerate(extras, 1)])
        stored = [row[0] for row in conn.execute("SELECT extra FROM trajectory_turns ORDER BY turn_number")]
    assert stored == [json.dumps(extra) if extra else None for extra in extras]


def test_a_batch_of_turns_without_extras_stores_every_other_value_in_its_place(db_path):
    turns = [turn(i, token_count=10 + i, latency_ms=i / 2, timestamp=f"2026-01-01T00:00:{i:02d}.000Z",
                  judged_by="rules/1") for i in range(1, 21)]
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        writer.write(turns)
        stored = conn.execute(
            "SELECT turn_number, prompt, response, token_count, latency_ms, timestamp, trace_id, span_id, extra, "
            "judged_by FROM trajectory_turns ORDER BY turn_number").fetchall()
    assert stored == [(r.turn_number, r.prompt, r.response, r.token_count, r.latency_ms, r.timestamp, r.trace_id,
                       r.span_id, None, "rules/1") for r in turns]


@pytest.mark.parametrize("judges", [[None] * 6, ["rules/1"] * 6, [None, "rules/1", None, None, "llm/x", None]])
def test_every_question_of_a_batch_keeps_its_judge_or_none(db_path, judges):
    turns = [turn(i, questions=[Question(f"q{i}?", "low", "explicit", judge)]) for i, judge in enumerate(judges, 1)]
    with closing(schema.connect(db_path)) as conn:
        writer = TrajectoryWriter(conn)
        writer.write([TRAJ])
        writer.write(turns)
        stored = conn.execute("SELECT question_text, effort_level, source, judge FROM trajectory_questions "
                              "ORDER BY id").fetchall()
    assert stored == [(f"q{i}?", "low", "explicit", judge) for i, judge in enumerate(judges, 1)]
