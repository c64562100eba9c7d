"""`pip install 'spoken-digits[keras]'`, then the README's DoctorCallback snippet, with nothing set.

How, and the trade-off: a wholly fresh install downloads torch (hundreds of MB even as the CPU wheel)
and a dozen other binary packages, minutes per run. So the test makes a venv without the system
site-packages and lends it the *base* dependencies already installed here: a .pth file names a
folder of per-file links to every installed distribution except keras and spoken-digits (links to
files, never to folders, so nothing pip does there can touch the real ones). pip then installs
`spoken-digits[keras]` from a copy of this source tree, resolving the extra for real: keras is not
there, and only the extra asks for it (it is pinned, like everything lent, to the version installed
here so that pip never has to replace a lent distribution). The snippet runs in a subprocess with
KERAS_BACKEND unset and HOME in a fresh folder, then with a keras.json that names tensorflow (the
file keras writes by default), neither of which has tensorflow to load. What this does not check:
that the base dependencies themselves resolve from scratch (the README's install does that).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WITHHELD = ("keras", "spoken-digits", "spoken_digits")

DATA = """
import numpy as np
rng = np.random.default_rng(0)
def arrays(n):
    y = np.arange(n) % 10
    x = rng.normal(0, 1, (n, 16, 80)).astype("float32")
    x[np.arange(n), :, 8 * y] += 3.0
    return x, y
x_train, y_train = arrays(400)
x_val, y_val = arrays(100)
mean, std = x_train.mean(axis=(0, 1)), x_train.std(axis=(0, 1))  # standardised on the training clips, as users do
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
"""


def readme_snippet(readme: Path = ROOT / "README.md") -> str:
    """The README's Python block that uses DoctorCallback, with its epochs cut to 2."""
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    found = [b for b in blocks if "from spoken_digits.diagnose.keras import DoctorCallback" in b and "model.fit" in b]
    assert found, "README.md has no runnable ```python block with DoctorCallback and model.fit"
    return re.sub(r"epochs=\d+", "epochs=2", found[0])


def _lend(site: Path, farm: Path) -> list[str]:
    """Link every file of `site` into `farm` except the withheld distributions; return pins for them."""
    withheld = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions(path=[str(site)])}
    withheld &= {w.replace("_", "-") for w in WITHHELD}
    skip: set[str] = set()
    for dist in metadata.distributions(path=[str(site)]):
        if dist.metadata["Name"].lower().replace("_", "-") in withheld:
            skip |= {Path(str(f)).parts[0] for f in dist.files or []}
    pins = []
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        if name.lower().replace("_", "-") not in withheld:
            pins.append(f"{name}=={dist.version}")
    for entry in site.iterdir():
        if entry.name in skip or entry.suffix == ".pth" or entry.name.startswith("__editable__"):
            continue
        if entry.is_dir():
            for folder, _, files in os.walk(entry):
                target = farm / Path(folder).relative_to(site)
                target.mkdir(parents=True, exist_ok=True)
                for name in files:
                    (target / name).symlink_to(Path(folder) / name)
        else:
            (farm / entry.name).symlink_to(entry)
    return pins


def test_the_keras_extra_runs_the_readme_snippet_with_nothing_set(tmp_path):
    if importlib.util.find_spec("keras") is None:  # not importorskip: keras fails to import without a backend
        pytest.skip("needs keras (the keras extra) to pin and lend its version")
    snippet = readme_snippet()
    site = Path(sysconfig.get_paths()["purelib"])
    if not (site / "torch").is_dir():
        pytest.skip("torch is not installed in this environment's site-packages")
    farm = tmp_path / "lent"
    farm.mkdir()
    pins = _lend(site, farm)
    pins.append(f"keras=={metadata.version('keras')}")
    (tmp_path / "pins.txt").write_text("\n".join(pins) + "\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "lent.pth").write_text(str(farm) + "\n")
    source = tmp_path / "source"  # a copy: building writes into the tree it builds
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "-c", str(tmp_path / "pins.txt")]
    pip.append("--no-build-isolation")  # build with the lent setuptools: nothing to download for the build
    install = subprocess.run(
        [*pip, f"{source}[keras]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [python, "-c", "import keras, spoken_digits; print(keras.__file__); print(spoken_digits.__file__)"],
        capture_output=True,
        text=True,
        env={**_clean_env(tmp_path / "probe"), "KERAS_BACKEND": "torch"},
        timeout=120,
    )
    lines = where.stdout.split()
    assert where.returncode == 0 and len(lines) == 2, where.stdout + where.stderr
    assert all(line.startswith(purelib) for line in lines), where.stdout  # both installed into the new venv
    for home, config in (("home-fresh", None), ("home-keras-json", {"backend": "tensorflow"})):
        env = _clean_env(tmp_path / home)
        if config is not None:
            (tmp_path / home / ".keras").mkdir(parents=True)
            (tmp_path / home / ".keras" / "keras.json").write_text(json.dumps(config))
        run = subprocess.run(
            [python, "-c", DATA + snippet], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )
        assert run.returncode == 0, f"HOME {home}:\n{run.stdout}\n{run.stderr}"
        verdict = next(line for line in run.stdout.splitlines() if "problem(s) found" in line or "health" in line)
        assert verdict == "clean bill of health: nothing above info", run.stdout  # separable data, a sound model


def _clean_env(home: Path) -> dict[str, str]:
    """This environment less anything that would pick keras' backend or lend modules."""
    home.mkdir(parents=True, exist_ok=True)
    drop = {"KERAS_BACKEND", "KERAS_HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"HOME": str(home), "OMP_NUM_THREADS": "1"}
