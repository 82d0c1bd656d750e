"""A run killed mid-scheduler (SIGKILL) resumes without re-running finished tools."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

WORKER = pathlib.Path(__file__).parent / "workers" / "durable_worker.py"


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_mid_scheduler_then_resume_in_another_process(tmp_path: pathlib.Path) -> None:
    db, log = tmp_path / "cp.sqlite", tmp_path / "calls.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(log), "t1", "start"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        finished_before_kill = {"done:a", "done:b", "done:c", "done:d A"}
        while not finished_before_kill <= set(_lines(log)):
            assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, _lines(log)
            time.sleep(0.05)
        time.sleep(0.5)  # the journal writes of those calls land meanwhile
        assert "start:slow" in _lines(log) and "done:slow" not in _lines(log)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    before = _lines(log)

    resumed = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(log), "t1", "resume"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    out = json.loads(resumed.stdout.decode().strip().splitlines()[-1])
    after = _lines(log)[len(before) :]

    # Finished calls are not run again; the one in flight at the kill is.
    assert after.count("start:slow") == 1
    assert not any(line.split(":", 1)[1] in {"a", "b", "c", "d A"} for line in after), after
    assert "start:e D A SLOW" in after
    # No result lost, and the resumed process did not re-plan.
    assert out["results"] == {
        "1": "A",
        "2": "B",
        "3": "C",
        "4": "D A",
        "5": "SLOW",
        "6": "E D A SLOW",
    }
    assert out["answer"] == "all done"
    assert out["llm_calls"] == 1  # the joiner only
