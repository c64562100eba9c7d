"""Safe outputs: atomic file writes (temporary name, then rename) and a per-folder run lock.

A crash or a full disk leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spoken_digits.errors import SpokenDigitsError

# atomic_path's temporary names, `.{name}.{pid}.{12 hex digits}.tmp`; nothing else is ever removed.
TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{12}\.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before anything exists and created by the writer, so an interrupt (Ctrl-C, SIGTERM)
    # at any line can only find a file this handler knows of; it gets the umask's permissions.
    # The name carries the writer's pid (see TEMPORARY) so a folder lock can tell whose it is.
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

    The operating system drops the lock when the process ends, however it ends. `atomic_path`
    temporaries under `folder` whose writer process is gone (killed mid-write) are removed on taking
    the lock, and this process's own on release (an interrupt may leave a write unfinished). Files
    of live writers, such as other runs writing into subfolders of `folder`, are never touched.
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
        for path, pid in _temporary_files(folder):
            if not _alive(pid):  # its writer was killed mid-write
                path.unlink(missing_ok=True)
        try:
            yield
        finally:
            for path, pid in _temporary_files(folder):
                if pid == os.getpid():  # a write of ours an interrupt left unfinished
                    path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _temporary_files(folder: Path) -> list[tuple[Path, int]]:
    """`atomic_path` temporaries anywhere under `folder`, with their writers' pids (other files are skipped)."""
    found = []
    for root, _, names in os.walk(folder):  # unlike Path.rglob, skips subfolders other runs remove meanwhile
        for name in names:
            if (match := TEMPORARY.fullmatch(name)) is not None:
                found.append((Path(root) / name, int(match["pid"])))
    return found


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine); an unusable pid counts as alive, so its file stays."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # PermissionError: it exists but belongs to another user
    return True
