"""A fork() while another thread is inside a write transaction leaves the child a usable store.

SQLite's lock bookkeeping is process-wide and a forked child inherits it: had the fork
happened mid-transaction, the child would believe the write lock is held by a connection
of its own that never commits, and every write of its would wait out the busy timeout
(the forked-child SIGTERM test hung that way once in a full run). ``no_fork()`` in
``runpoint._util.forksafe`` makes fork() wait until no store operation of another thread runs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    from runpoint.store import RunRecord, RunStatus
    from runpoint.store.sqlite import SQLiteStore

    path = sys.argv[1]

    def record(run_id):
        now = time.time()
        return RunRecord(id=run_id, project="p", name=run_id, status=RunStatus.RUNNING,
                         created_at=now, heartbeat_at=now, dir="p/" + run_id)

    parent_store = SQLiteStore(path)
    inside = threading.Event()

    def hold_a_transaction():
        with parent_store._transaction() as conn:
            conn.execute("UPDATE runs SET notes = notes WHERE 0")
            inside.set()
            time.sleep(1.0)

    holder = threading.Thread(target=hold_a_transaction)
    holder.start()
    inside.wait()
    pid = os.fork()  # the other thread is inside its transaction
    if pid == 0:
        signal.alarm(20)  # a child stuck behind the inherited lock dies here (SIGALRM)
        child_store = SQLiteStore(path)
        child_store.create_run(record("child"))
        os._exit(0)
    holder.join()
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    print("runs", sorted(r.id for r in parent_store.list_runs()))
""")


def test_a_child_forked_during_a_write_transaction_can_write(tmp_path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "runpoint.db")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout, result.stdout + result.stderr
    assert "runs ['child']" in result.stdout, result.stdout
