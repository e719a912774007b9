"""`wattchain run`'s supervisor, on small Python children instead of the market's parts: a dead
child is restarted after a backoff that doubles up to a cap and resets once the child stayed up,
each death is logged with its exit status and the last line of the child's log, a child that
keeps dying is reported and given up on, and what a dead child left in its process group goes
with it."""

from __future__ import annotations

import logging
import signal
import sys

import pytest
from process_testkit import SLEEPER, running, wait_for

from wattchain.processes import Child
from wattchain.supervisor import Backoff, GaveUp, Supervisor, exit_status

CRASHER = [sys.executable, "-c", "import sys; print('boom: no config', flush=True); sys.exit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _die_and_check(supervisor: Supervisor, child: Child) -> float:
    """Let the child exit, let the supervisor see it; the backoff it chose."""
    child.process.wait(10)
    supervisor.check()
    (watched,) = supervisor.watched
    assert watched.restart_at is not None, "the death was not noticed"
    return watched.restart_at - supervisor.clock()


def test_a_dead_child_is_restarted_with_a_doubling_capped_backoff_and_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wattchain.run")
    clock = Clock()
    child = Child([], tmp_path / "flaky.log", program=CRASHER).launch()
    supervisor = Supervisor(backoff=Backoff(1.0, 30.0, 60.0), restart_limit=0, clock=clock)
    supervisor.add("flaky", child)
    pids, delays = [child.process.pid], []
    for _ in range(7):
        delays.append(_die_and_check(supervisor, child))
        clock.now += delays[-1] - 0.001
        supervisor.check()  # not yet
        assert child.process.pid == pids[-1]
        clock.now += 0.001
        supervisor.check()  # now
        pids.append(child.process.pid)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert len(set(pids)) == len(pids) and supervisor.restarts("flaky") == 7

    died = [r.getMessage() for r in caplog.records if "flaky (pid" in r.getMessage()]
    assert len(died) == 7
    assert died[0] == (
        f"flaky (pid {pids[0]}) died: exit status 3 after 0.0 s; restarting in 1 s; "
        "last log line: boom: no config"
    )
    # From the third death in a row it says so, as an error naming the log.
    assert all("keeps dying" in m and str(tmp_path / "flaky.log") in m for m in died[2:])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 5
    restarted = [r.getMessage() for r in caplog.records if "restarted" in r.getMessage()]
    assert restarted[0] == f"flaky restarted (pid {pids[1]}, restart 1)"

    # Once the child has stayed up long enough, the next restart waits the first delay again.
    child.process.wait(10)
    clock.now += 60.0
    assert _die_and_check(supervisor, child) == 1
    supervisor.stop()


def test_a_child_that_keeps_dying_is_given_up_on_with_its_log(tmp_path):
    clock = Clock()
    child = Child([], tmp_path / "api.log", program=CRASHER).launch()
    supervisor = Supervisor(backoff=Backoff(1.0, 30.0, 60.0), restart_limit=3, clock=clock)
    supervisor.add("api", child)
    for _ in range(2):
        clock.now += _die_and_check(supervisor, child)
        supervisor.check()
    child.process.wait(10)
    with pytest.raises(GaveUp) as gave_up:
        supervisor.check()
    message = str(gave_up.value)
    assert message.startswith("api keeps dying: 3 times in a row, each within 60 s of starting")
    assert "(last: exit status 3); giving up" in message
    assert str(tmp_path / "api.log") in message and "boom: no config" in message


def test_a_killed_child_is_restarted_and_what_it_started_goes_with_it(tmp_path, caplog):
    """Real time: kill -9 of a supervised child; it is back within the (short) backoff, and the
    grandchild it had started in its process group did not survive it."""
    caplog.set_level(logging.INFO, logger="wattchain.run")
    parent_of_one = [
        sys.executable,
        "-c",
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', p.pid, flush=True)\n"
        "time.sleep(60)\n",
    ]
    log = tmp_path / "workers.log"
    child = Child([], log, program=parent_of_one).launch()
    supervisor = Supervisor(backoff=Backoff(0.1, 1.0, 60.0))
    supervisor.add("workers", child)
    try:
        wait_for(lambda: "grandchild" in log.read_text(), 10, "the grandchild")
        grandchild = int(log.read_text().split()[1])
        first = child.process.pid
        child.process.send_signal(signal.SIGKILL)

        def restarted() -> bool:
            supervisor.check()
            return supervisor.restarts("workers") == 1

        wait_for(restarted, 5, "the restart")
        assert child.process.pid != first and running(child.process.pid)
        wait_for(lambda: not running(grandchild), 5, "the grandchild to go")
        (died,) = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
        assert died.startswith(f"workers (pid {first}) died: killed by signal 9 (SIGKILL) after ")
    finally:
        supervisor.stop()
    assert not running(child.process.pid)


def test_stop_stops_every_child_and_none_is_restarted(tmp_path):
    children = [Child([], tmp_path / f"{n}.log", program=SLEEPER).launch() for n in range(3)]
    supervisor = Supervisor(backoff=Backoff(0.0, 0.0, 60.0))
    for n, child in enumerate(children):
        supervisor.add(str(n), child)
    supervisor.stop()
    supervisor.check()
    supervisor.check()
    assert not any(running(c.process.pid) for c in children)


def test_exit_status_reads_as_a_person_would_say_it():
    assert exit_status(0) == "exit status 0"
    assert exit_status(3) == "exit status 3"
    assert exit_status(-9) == "killed by signal 9 (SIGKILL)"
    assert exit_status(-15) == "killed by signal 15 (SIGTERM)"
