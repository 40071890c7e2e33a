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


# multiprocessing ends a forked child with os._exit: no atexit hook, so no SDK shutdown.
_CHILDREN_THAT_NEVER_FLUSH = """
import multiprocessing, sys
import ppp_otel

ppp_otel.register(sys.argv[1])

def task(k):
    with ppp_otel.trajectory("fork-exit-spec", f"task-{k}"):
        for i in range(3):
            with ppp_otel.turn(f"task {k} turn {i}") as t:
                t.respond("done")

if __name__ == "__main__":
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=task, args=(k,)) for k in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    pool = fork.Pool(2)
    pool.map(task, range(3, 9))
    pool.close()
    pool.join()
"""


def test_forked_children_that_end_without_a_flush_keep_every_turn(db_path):
    run = subprocess.run([sys.executable, "-c", _CHILDREN_THAT_NEVER_FLUSH, str(db_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert turns_by_task(db_path) == {f"task-{k}": 3 for k in range(9)}


# A forkserver's children (Python 3.14's default start method on Linux) end with os._exit too.
_FORKSERVER_CHILDREN = """
import multiprocessing, sys
import ppp_otel

def task(db, k):
    ppp_otel.register(db)
    with ppp_otel.trajectory("forkserver-spec", f"task-{k}"):
        for i in range(3):
            with ppp_otel.turn(f"task {k} turn {i}") as t:
                t.respond("done")

if __name__ == "__main__":
    forkserver = multiprocessing.get_context("forkserver")
    children = [forkserver.Process(target=task, args=(sys.argv[1], k)) for k in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    sys.exit(max(child.exitcode for child in children))
"""


def test_children_of_a_forkserver_that_record_on_their_own_keep_every_turn(db_path, tmp_path):
    app = tmp_path / "forkserver_app.py"  # a file: a forkserver's children import their task from it
    app.write_text(_FORKSERVER_CHILDREN)
    run = subprocess.run([sys.executable, str(app), str(db_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert turns_by_task(db_path) == {f"task-{k}": 3 for k in range(3)}
