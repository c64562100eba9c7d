"""Locating FSDD, verified downloads that never leave a partial copy, and the clip index."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from spoken_digits.data import fsdd
from spoken_digits.errors import DatasetError


def make_archive(tmp_path: Path, files: dict[str, bytes]) -> str:
    """A tarball shaped like GitHub's FSDD archive; returns its file:// URL."""
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {**files, "README.md": b"readme"}.items():
            member = f"free-spoken-digit-dataset-1.0.10/{'recordings/' if name.endswith('.wav') else ''}{name}"
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.as_uri()


FILES = {"0_anna_0.wav": b"RIFF-zero", "1_anna_0.wav": b"RIFF-one"}
SUMS = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


def test_download_verifies_and_marks_complete(tmp_path):
    target = tmp_path / "cache" / "fsdd"
    fsdd.download_to(target, url=make_archive(tmp_path, FILES), expected=SUMS)
    assert (target / fsdd.SENTINEL).exists()
    assert sorted(p.name for p in (target / "recordings").iterdir()) == sorted(FILES)


def test_files_outside_the_manifest_are_not_copied(tmp_path):
    target = tmp_path / "fsdd"
    fsdd.download_to(target, url=make_archive(tmp_path, {**FILES, "9_mallory_0.wav": b"x"}), expected=SUMS)
    assert not (target / "recordings" / "9_mallory_0.wav").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0_anna_0.wav": b"RIFF-zero", "1_anna_0.wav": b"tampered"}, "corrupt: 1_anna_0.wav"),
        ({"0_anna_0.wav": b"RIFF-zero"}, "incomplete: 1 files missing"),
    ],
)
def test_a_bad_download_is_never_used(tmp_path, files, message):
    target = tmp_path / "cache" / "fsdd"
    with pytest.raises(DatasetError, match=message):
        fsdd.download_to(target, url=make_archive(tmp_path, files), expected=SUMS)
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no temporary leftovers either


def test_damaged_archive_and_unreachable_url(tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DatasetError, match="damaged"):
        fsdd.download_to(tmp_path / "a", url=broken.as_uri(), expected=SUMS)
    with pytest.raises(DatasetError, match=r"downloading FSDD from .* failed"):
        fsdd.download_to(tmp_path / "b", url=(tmp_path / "missing.tar.gz").as_uri(), expected=SUMS)


def test_shipped_manifest_covers_all_3000_recordings():
    sums = fsdd.manifest()
    assert len(sums) == 3000 and "0_george_0.wav" in sums
    assert all(len(digest) == 64 for digest in sums.values())


def test_locate_order_explicit_then_env_then_cache(tmp_path, monkeypatch, synthetic_fsdd):
    monkeypatch.setenv("SPOKEN_DIGITS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FSDD_ROOT", raising=False)
    with pytest.raises(DatasetError, match="FSDD not found: pass --data DIR, set FSDD_ROOT"):
        fsdd.locate()
    monkeypatch.setenv("FSDD_ROOT", str(synthetic_fsdd))
    assert fsdd.locate() == synthetic_fsdd / "recordings"
    assert fsdd.locate(synthetic_fsdd / "recordings") == synthetic_fsdd / "recordings"
    with pytest.raises(DatasetError, match=r"\(the given path\): no FSDD wav files"):
        fsdd.locate(tmp_path)
    cached = tmp_path / "cache" / f"fsdd-{fsdd.VERSION}"
    (cached / "recordings").mkdir(parents=True)
    (cached / fsdd.SENTINEL).write_text("done")
    monkeypatch.delenv("FSDD_ROOT")
    assert fsdd.locate() == cached / "recordings"


def test_index_parses_names_and_rejects_strangers(tmp_path, synthetic_fsdd):
    clips = fsdd.index(synthetic_fsdd / "recordings")
    assert len(clips) == 240
    first = clips[0]
    assert (first.digit, first.speaker, first.take) == (0, "anna", 0)
    (tmp_path / "hello.wav").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"hello\.wav: not an FSDD file name"):
        fsdd.index(tmp_path)


@pytest.mark.fsdd
def test_local_copy_matches_the_shipped_manifest(fsdd_root):
    sums = fsdd.manifest()
    folder = fsdd.recordings_dir(fsdd_root)
    for name in list(sums)[::100]:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sums[name]
    clips = fsdd.index(folder)
    assert len(clips) == 3000 and len({c.speaker for c in clips}) == 6
