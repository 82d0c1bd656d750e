"""Kill-and-resume check shared by ``test_durability.py`` (SQLite) and
``test_postgres.py`` (a real PostgreSQL): the same worker, killed with SIGKILL
mid-scheduler and resumed in another process."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

WORKER = pathlib.Path(__file__).parent / "workers" / "durable_worker.py"
FINISHED_BEFORE_KILL = {"done:a", "done:b", "done:c A"}


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def kill_mid_scheduler_then_resume(saver: str, tmp_path: pathlib.Path) -> None:
    """Start the worker on ``saver``, SIGKILL it while one tool is in flight,
    resume the thread in a new process and check that nothing ran twice and
    nothing was lost."""
    log = tmp_path / "calls.log"
    thread_id = uuid.uuid4().hex
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), saver, str(log), thread_id, "start"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not set(_lines(log)) >= FINISHED_BEFORE_KILL:
            assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, _lines(log)
            time.sleep(0.05)
        time.sleep(0.5)  # let the journal writes of those calls land
        assert "start:slow" in _lines(log) and "done:slow" not in _lines(log)
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    before = _lines(log)

    resumed = subprocess.run(
        [sys.executable, str(WORKER), saver, str(log), thread_id, "resume"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    out = json.loads(resumed.stdout.decode().strip().splitlines()[-1])
    after = _lines(log)[len(before) :]

    # No result lost, and the resumed process did not plan again.
    assert out["answer"] == "all done"
    assert out["results"] == {"1": "A", "2": "B", "3": "C A", "4": "SLOW", "5": "D C A SLOW"}
    assert out["planner_calls"] == 0 and out["joiner_calls"] == 1
    # The call in flight at the kill runs again; the finished ones do not.
    assert after.count("start:slow") == 1 and after.count("done:slow") == 1
    rerun = [line for line in after if line.split(":", 1)[1] in {"a", "b", "c A"}]
    assert rerun == [], f"finished tools ran again after resume: {rerun}"
    assert after[-2:] == ["start:d C A SLOW", "done:d C A SLOW"]
