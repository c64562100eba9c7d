"""The lean runtime installed as a user would: a fresh virtual environment, `pip install spoken-digits` from
this repository with its base dependencies only (numpy, soundfile, soxr, onnxruntime; no torch). Used by its
test (tests/test_lean.py) and the runtime benchmark."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from spoken_digits.errors import SpokenDigitsError

REPO = Path(__file__).resolve().parents[1]


def lean_venv(folder: Path, extras: str = "") -> Path:
    """A new venv at `folder` holding spoken-digits (+ `extras`, e.g. "[web]") and nothing else; its bin dir.
    Built from a copy of what the build reads, so no build folder is left in (or read from) the checkout."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    source = folder.parent / f"{folder.name}-source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, f"{source}{extras}"], capture_output=True, text=True)
    shutil.rmtree(source, ignore_errors=True)
    if done.returncode:
        raise SpokenDigitsError(f"pip install {REPO}{extras} into {folder} failed:\n{done.stderr[-2000:]}")
    return folder / "bin"


TOOLS = ("pip", "setuptools", "_distutils_hack")  # what every venv starts with


def site_packages_mb(folder: Path, *, leave_out: tuple[str, ...] = TOOLS) -> dict[str, float]:
    """MB on disk of what a venv installed, by top-level folder (numpy and numpy.libs count as numpy), and
    "total"; without the packaging tools (`leave_out`)."""
    (site,) = (folder / "lib").glob("python3*/site-packages")
    sizes: dict[str, float] = {}
    for path in site.rglob("*"):
        top = path.relative_to(site).parts[0].split("-")[0].split(".")[0]
        if path.is_file() and not path.is_symlink() and top not in leave_out:
            sizes[top] = sizes.get(top, 0.0) + path.stat().st_size / 1e6
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1])) | {"total": sum(sizes.values())}
