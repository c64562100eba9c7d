"""Interrupted runs lose nothing and resume to the same numbers; outputs are atomic and locked."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest
import torch

from spoken_digits import atomic
from spoken_digits.apps.cli import main
from spoken_digits.atomic import atomic_path, folder_lock, write_json
from spoken_digits.models import checkpoint

ARGS = ["--split", "loso", "--model", "gru", "--param", "hidden=48", "--epochs", "30", "--patience", "0"]


def start_run(data: Path, out: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "spoken_digits", "train", "--data", str(data), "--out", str(out), *ARGS]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name} appeared: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "seconds"}


def log_rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def same_log(ours: list[dict[str, str]], reference: list[dict[str, str]]) -> None:
    """The same rows, numbers equal to the log's 6 decimals give or take its last digit: a resumed process's
    float sums may differ from the uninterrupted one's in the 7th digit (the weights are compared the same
    way, with assert_close), and a rounding boundary can then move the sixth."""
    assert [(r["fold"], r["epoch"]) for r in ours] == [(r["fold"], r["epoch"]) for r in reference]
    for a, b in zip(ours, reference, strict=True):
        for key in a.keys() - {"fold", "epoch"}:
            assert (a[key] == b[key]) or abs(float(a[key]) - float(b[key])) <= 1.5e-6, (a, b)


def no_temporary_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def uninterrupted(synthetic_fsdd, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    assert main(["train", "--data", str(synthetic_fsdd), "--out", str(out), *ARGS]) == 0
    return out


def test_a_killed_run_resumes_to_the_same_metrics(synthetic_fsdd, tmp_path, uninterrupted):
    out = tmp_path / "run"
    process = start_run(synthetic_fsdd, out)
    wait_for(out / ".state" / "bert.pt", process)  # first fold done, second one mid-training
    time.sleep(0.05)
    process.kill()  # SIGKILL: no chance to clean up
    process.wait()
    assert not (out / "metrics.json").exists()
    state = torch.load(out / ".state" / "bert.pt", weights_only=True)  # the last good state is intact
    assert 1 <= state["epoch"] < 30
    assert (out / ".state" / "anna.done.json").exists() and (out / "folds" / "anna" / "model.pt").exists()
    assert log_rows(out)[-1]["fold"] == "bert"
    assert main(["train", "--data", str(synthetic_fsdd), "--out", str(out), *ARGS]) == 2  # not silently restarted
    assert main(["train", "--resume", str(out), "--data", str(synthetic_fsdd)]) == 0
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    assert without_time(json.loads((out / "metrics.json").read_text())) == without_time(reference)
    same_log(log_rows(out), log_rows(uninterrupted))
    for speaker in ("anna", "bert", "carl"):
        ours = checkpoint.load(out / "folds" / speaker / "model.pt").model_state
        torch.testing.assert_close(ours, checkpoint.load(uninterrupted / "folds" / speaker / "model.pt").model_state)
    assert not (out / ".state").exists() and no_temporary_files(out)


def test_sigterm_stops_cleanly_and_says_how_to_resume(synthetic_fsdd, tmp_path, uninterrupted):
    out = tmp_path / "run"
    process = start_run(synthetic_fsdd, out)
    wait_for(out / ".state" / "anna.pt", process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"continue with: spoken-digits train --resume {out}" in err
    assert no_temporary_files(out) and (out / "config.json").exists()
    assert main(["train", "--resume", str(out), "--data", str(synthetic_fsdd)]) == 0
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    assert without_time(json.loads((out / "metrics.json").read_text())) == without_time(reference)


def test_a_second_run_on_the_same_folder_is_refused(synthetic_fsdd, tmp_path, capsys):
    with folder_lock(tmp_path):
        assert main(["train", "--data", str(synthetic_fsdd), "--out", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "is in use by another spoken-digits run (pid " in err and "choose another --out" in err
    assert main(["train", "--data", str(synthetic_fsdd), "--out", str(tmp_path), "--epochs", "1"]) == 0  # released


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (lambda d: None, ["--resume", "{out}"], "nothing to resume (no config.json"),
        (lambda d: write_json(d / "config.json", {}), ["--resume", "{out}"], "nothing to resume"),
        (lambda d: None, ["--resume", "{out}", "--epochs", "3", "--model", "gru"], "drop --model, --epochs"),
    ],
)
def test_resume_mistakes_get_clear_errors(tmp_path, capsys, setup, argv, message):
    setup(tmp_path)
    assert main(["train", *(a.format(out=tmp_path) for a in argv)]) == 2
    assert message in capsys.readouterr().err


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_run(tmp_path):
    (tmp_path / "folds" / "anna").mkdir(parents=True)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a writer process that no longer exists
    names = [f".log.csv.{ended.pid}.0123456789ab.tmp", f".model.pt.{ended.pid}.ba9876543210.tmp"]
    stale = [tmp_path / names[0], tmp_path / "folds" / "anna" / names[1]]
    for path in stale:
        path.write_bytes(b"half")
    (tmp_path / "keep.tmp").write_bytes(b"not ours")
    with folder_lock(tmp_path):
        assert not any(p.exists() for p in stale) and (tmp_path / "keep.tmp").exists()


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": True})

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"), atomic_path(target) as tmp:
        tmp.write_text('{"new": tr')  # half written ...
        disk_full()  # ... when the disk fills up
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_checkpoint_save_that_fails_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from test_checkpoint import make_checkpoint

    checkpoint.save(tmp_path / "model.pt", make_checkpoint())
    before = (tmp_path / "model.pt").read_bytes()

    def half_then_fail(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 truncated")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path / "model.pt", make_checkpoint())
    assert (tmp_path / "model.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "m.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode


def interrupt_at_line(n: int) -> Callable[..., object]:
    """A trace function raising KeyboardInterrupt, as our SIGTERM handler does, at the n-th line the
    write machinery runs (ours, contextlib's, pathlib's); other code, like gc callbacks, runs untraced."""
    files = {atomic.__file__, contextlib.__file__, pathlib.__file__}
    seen = 0

    def trace(frame: FrameType, event: str, arg: object) -> object:
        nonlocal seen
        if frame.f_code.co_filename not in files:
            return None
        if event == "line":
            seen += 1
            if seen == n:
                raise KeyboardInterrupt
        return trace

    return trace


def test_an_interrupt_at_any_line_of_a_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": True})
    for n in itertools.count(1):
        with folder_lock(tmp_path):
            sys.settrace(interrupt_at_line(n))
            try:
                write_json(target, {"new": True})
                finished = True
            except KeyboardInterrupt:
                finished = False
            finally:
                sys.settrace(None)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "metrics.json"], n
        assert json.loads(target.read_text()) in ({"old": True}, {"new": True})
        if finished:
            break
        write_json(target, {"old": True})
    assert n > 20  # every line of the write, contextlib's included, was interrupted once
