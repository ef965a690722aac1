"""`klubb worker` as a real process: the first SIGINT lets the batch in hand finish, a second
one stops it at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = "klubb worker: sending and running jobs"


def start_worker(tmp_path: Path, sqlite_template: Path) -> subprocess.Popen[str]:
    database = tmp_path / "klubb.db"
    shutil.copy(sqlite_template, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLUBB_", "TWILIO_"))}
    env.update(
        {
            "KLUBB_DATABASE_URL": f"sqlite:///{database}",
            "KLUBB_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "worker"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(process: subprocess.Popen[str], line: str, seconds: float = 30.0) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = process.stdout.readline()
        if not got:
            break
        seen.append(got)
        if line in got:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"no {line!r} in:\n{''.join(seen)}")


def test_a_second_sigint_stops_the_worker_at_once(tmp_path: Path, sqlite_template: Path) -> None:
    worker = start_worker(tmp_path, sqlite_template)
    try:
        wait_for(worker, READY)
        worker.send_signal(signal.SIGINT)
        wait_for(worker, "stopping after the batch in hand")
        began = time.monotonic()
        worker.send_signal(signal.SIGINT)
        out, _ = worker.communicate(timeout=10)
        assert time.monotonic() - began < 5
        assert worker.returncode == 1
        assert "stopped at once" in out
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_one_sigint_stops_it_cleanly(tmp_path: Path, sqlite_template: Path) -> None:
    worker = start_worker(tmp_path, sqlite_template)
    try:
        wait_for(worker, READY)
        worker.send_signal(signal.SIGINT)
        out, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0
        assert "klubb worker: stopped" in out
        assert "at once" not in out
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
