"""TrajectoryWriter: large batches go in as a few multi-row statements, exactly."""

from contextlib import closing

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
