"""Safe outputs: atomic file writes (temporary name, then rename) and a per-folder run lock.

A crash or a full disk leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spoken_digits.errors import SpokenDigitsError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before anything exists and created by the writer, so an interrupt (Ctrl-C, SIGTERM)
    # at any line can only find a file this handler knows of; it gets the umask's permissions.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write `data` as indented JSON atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (a `.lock` file in it) so two runs never write one folder.

    The operating system drops the lock when the process ends, however it ends. Temporary files
    found on taking the lock were left by a writer that was killed mid-write, and are removed; so
    are any found on release, in case an interrupt left a writer unfinished until exit.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise SpokenDigitsError(
                f"{folder} is in use by another spoken-digits run ({owner}); wait for it or choose another --out"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        _remove_temporary_files(folder)
        try:
            yield
        finally:
            _remove_temporary_files(folder)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_temporary_files(folder: Path) -> None:
    """Remove `atomic_path`'s temporary files under `folder`; only call it holding the lock."""
    for stale in folder.rglob(".*.tmp"):
        stale.unlink(missing_ok=True)
