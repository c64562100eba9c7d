"""The folder lock removes only temporary files it owns or whose writer is dead, never a live writer's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spoken_digits import atomic
from spoken_digits.atomic import atomic_path, folder_lock


def temporary(folder: Path, name: str, pid: int) -> Path:
    """A file named as `atomic_path` names its temporaries, as if process `pid` were writing `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.{pid}.0123456789ab.tmp"
    path.write_bytes(b"half written")
    return path


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process that stays alive for the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_pattern_is_the_one_atomic_path_uses(tmp_path):
    with atomic_path(tmp_path / "metrics.json") as tmp:
        match = atomic.TEMPORARY.fullmatch(tmp.name)
        tmp.write_text("{}")
    assert match is not None and match["name"] == "metrics.json" and int(match["pid"]) == os.getpid()


def test_another_live_writers_files_and_unrelated_files_survive_the_lock(tmp_path, live_pid):
    # `spoken-digits train --out .` while another run writes into ./other-run/ and its folds.
    theirs = [
        temporary(tmp_path / "other-run", "log.csv", live_pid),
        temporary(tmp_path / "other-run" / "folds" / "anna", "model.pt", live_pid),
        temporary(tmp_path, "metrics.json", os.getppid()),
    ]
    unrelated = [tmp_path / ".foo.tmp", tmp_path / "keep.tmp", tmp_path / ".notes.123.tmp"]
    for path in unrelated:
        path.write_bytes(b"not ours")
    with folder_lock(tmp_path):
        assert all(p.exists() for p in theirs + unrelated)
    assert all(p.exists() for p in theirs + unrelated)


def test_a_dead_writers_files_are_removed_on_taking_the_lock(tmp_path, dead_pid, live_pid):
    stale = [
        temporary(tmp_path, "log.csv", dead_pid),
        temporary(tmp_path / "folds" / "anna", "model.pt", dead_pid),
        temporary(tmp_path / ".state", "anna.pt", dead_pid),
    ]
    alive = temporary(tmp_path / "folds" / "bert", "model.pt", live_pid)
    with folder_lock(tmp_path):
        assert not any(p.exists() for p in stale)
        assert alive.exists()


def test_this_processs_leftovers_are_removed_on_release(tmp_path, live_pid):
    before = temporary(tmp_path / "folds" / "anna", "model.pt", os.getpid())
    theirs = temporary(tmp_path / "folds" / "bert", "model.pt", live_pid)
    with folder_lock(tmp_path):
        assert before.exists()  # it could be a write of this process in progress: left alone on entry
        during = temporary(tmp_path, "metrics.json", os.getpid())  # e.g. a write an interrupt left behind
    assert not before.exists() and not during.exists()
    assert theirs.exists()
