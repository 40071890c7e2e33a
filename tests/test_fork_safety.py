"""A fork never lands inside the writer's transaction, so every forked child records."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

CHILD = str(Path(__file__).with_name("fork_pool_child.py"))


def turns_by_task(db_path) -> dict[str, int]:
    with closing(sqlite3.connect(db_path)) as conn:
        return dict(conn.execute(
            "SELECT j.agent_name, count(t.id) FROM trajectories j JOIN trajectory_turns t "
            "ON t.trajectory_id = j.id WHERE j.agent_name LIKE 'task-%' GROUP BY j.agent_name"
        ).fetchall())


def test_a_fork_pool_of_32_tasks_stores_every_trajectory_while_the_parent_writes(db_path):
    run = subprocess.run([sys.executable, CHILD, str(db_path), "32"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "confirmed 32" in run.stdout, run.stdout + run.stderr[-3000:]
    assert turns_by_task(db_path) == {f"task-{k}": 3 for k in range(32)}


def test_a_fork_waits_for_the_write_lock_and_both_sides_get_it_back():
    import os

    from ppp_otel.storage.sqlite import forklock

    lock = forklock.new_lock()
    pid = os.fork()
    if pid == 0:  # the child: the lock is free again
        os._exit(0 if not lock.locked() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not lock.locked()


# multiprocessing ends the children it forks with os._exit: no atexit hook, so no SDK shutdown.
# A file, not ``-c``: a forkserver's children import their task from it.
_CHILDREN_THAT_NEVER_FLUSH = """
import multiprocessing, sys
import ppp_otel

def task(db, k, register_here):
    if register_here:
        ppp_otel.register(db)
    with ppp_otel.trajectory("fork-exit-spec", f"task-{k}"):
        for i in range(3):
            with ppp_otel.turn(f"task {k} turn {i}") as t:
                t.respond("done")

if __name__ == "__main__":
    db, method, register_in = sys.argv[1:4]
    if register_in == "parent":
        ppp_otel.register(db)
    context = multiprocessing.get_context(method)
    children = [context.Process(target=task, args=(db, k, register_in == "child")) for k in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    pool = context.Pool(2)
    pool.starmap(task, [(db, k, register_in == "child") for k in range(3, 9)])
    pool.close()
    pool.join()
    sys.exit(max(child.exitcode for child in children))
"""


def run_children(tmp_path, db_path, method: str, register_in: str) -> None:
    app = tmp_path / "children_app.py"
    app.write_text(_CHILDREN_THAT_NEVER_FLUSH)
    run = subprocess.run([sys.executable, str(app), str(db_path), method, register_in],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_forked_children_that_end_without_a_flush_keep_every_turn(db_path, tmp_path):
    run_children(tmp_path, db_path, "fork", "parent")
    assert turns_by_task(db_path) == {f"task-{k}": 3 for k in range(9)}


def test_children_of_a_forkserver_that_record_on_their_own_keep_every_turn(db_path, tmp_path):
    # The default start method on Linux from Python 3.14.
    run_children(tmp_path, db_path, "forkserver", "child")
    assert turns_by_task(db_path) == {f"task-{k}": 3 for k in range(9)}
