"""A run killed mid-scheduler (SIGKILL) resumes without re-running finished tools."""

from __future__ import annotations

import pathlib

from durability import kill_mid_scheduler_then_resume


def test_sigkill_mid_scheduler_then_resume_in_another_process(tmp_path: pathlib.Path) -> None:
    kill_mid_scheduler_then_resume(str(tmp_path / "checkpoints.sqlite"), tmp_path)
