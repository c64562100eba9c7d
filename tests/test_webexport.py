"""export --web: a static page that recognises digit strings in the browser with onnxruntime-web, giving the
answers the Python runtime gives on the same audio."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from benchmarks.browser import open_page, static_server

from conftest import fsdd_string
from spoken_digits.apps.cli import main
from spoken_digits.apps.webexport import ORT_FILES, export_web, ort_web
from spoken_digits.errors import ParameterError
from spoken_digits.frontend import endpoint
from spoken_digits.recognize import segment
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.strings import transcribe
from test_web import CHROMIUM, fake_microphone


@pytest.fixture
def fake_ort(tmp_path) -> Path:
    """A stand-in for onnxruntime-web's dist folder (the files the page loads, not their contents)."""
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ORT_FILES:
        (dist / name).write_bytes(b"stand-in")
    return dist


def test_the_page_holds_everything_it_loads_and_the_python_constants(fake_ort, tmp_path):
    out = tmp_path / "page"
    made = export_web(out, ort_dist=fake_ort)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    files = {"index.html", "recognise.js", "model.onnx", "detector.onnx", "model.json", "NOTICE.md"}
    licences = {"LICENSE-silero-vad", "NOTICE-model.md"}  # the packaged model's attribution comes with it
    assert names == files | licences | {f"ort/{name}" for name in ORT_FILES}
    assert "CC BY-SA 4.0" in (out / "NOTICE.md").read_text()
    config = json.loads((out / "model.json").read_text())
    assert config == made["config"] and config["classes"] == [str(d) for d in range(10)]
    assert config["detector"]["ENTER"] == endpoint.ENTER and config["segment"]["CUT_WEIGHT"] == segment.CUT_WEIGHT
    page = (out / "index.html").read_text()
    assert "https://" not in page and "http://" not in page  # nothing fetched from elsewhere when it runs
    export_web(out, ort_dist=fake_ort)  # a previous export is replaced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    out.rename(tmp_path / ".page.1234.old")  # an export killed between its two renames left the page aside
    (tmp_path / ".page.1234.tmp").mkdir()  # ... and its half-written folder
    export_web(out, ort_dist=fake_ort)
    assert (out / "model.json").is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (tmp_path / "file").write_text("")
    with pytest.raises(ParameterError, match="is a file"):
        export_web(tmp_path / "file", ort_dist=fake_ort)


def test_bad_destinations_models_and_runtimes_are_refused(fake_ort, tmp_path, trained_default, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ParameterError, match="not a web export"):
        export_web(mine, ort_dist=fake_ort)
    assert (mine / "notes.txt").read_text() == "keep me"
    (fake_ort / ORT_FILES[-1]).unlink()
    with pytest.raises(ParameterError, match="not onnxruntime-web's dist folder"):
        ort_web(fake_ort)
    clean = tmp_path / "clean.onnx"
    assert main(["export", str(trained_default / "model.pt"), "--onnx", str(clean)]) == 0
    assert main(["export", str(clean), "--web", str(tmp_path / "page"), "--ort-web", str(fake_ort)]) == 2
    assert "not onnxruntime-web's dist folder" in capsys.readouterr().err
    assert main(["export", "--web", str(tmp_path / "p"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "exactly one of" in capsys.readouterr().err


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator[str]:
    """The packaged model's page, with onnxruntime-web from npm, served over HTTP: its URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    if shutil.which("npm") is None:
        pytest.skip("npm is missing: install Debian's npm package (apt-get install npm)")
    out = tmp_path_factory.mktemp("web") / "page"
    assert main(["export", "--web", str(out)]) == 0
    with static_server(out) as url:
        yield url


@pytest.mark.fsdd
def test_the_page_gives_the_python_runtimes_answers(page, fsdd_root):
    playwright = pytest.importorskip("playwright.sync_api")
    strings = [("4159", "nicolas"), ("720", "george"), ("38", "theo"), ("6", "lucas")]
    waves = [fsdd_string(fsdd_root, digits, speaker=who) for digits, who in strings]
    waves += [sf.read(fsdd_root / "recordings" / f"{d}_{who}_{d % 5}.wav", dtype="float32")[0]
              for d in range(10) for who in ("jackson", "yweweler")]
    waves = [soxr.resample(y, 8000, 16000).astype(np.float32) for y in waves]
    expected = transcribe(load_predictor(), waves)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        tab, _ = open_page(browser, page)
        got = [
            tab.evaluate("async (y) => (await window.spokenDigits.ready).transcribe(Float32Array.from(y))", y.tolist())
            for y in waves
        ]
        browser.close()
    assert [g["text"] for g in got] == [t.text for t in expected]
    assert [g["text"] for g in got[:4]] == [digits for digits, _ in strings]
    for g, t in zip(got, expected, strict=True):
        np.testing.assert_allclose([w["probability"] for w in g["words"]], [w.probability for w in t.words], atol=1e-4)
        np.testing.assert_allclose([w["start"] for w in g["words"]], [w.start for w in t.words], atol=1e-9)


@pytest.mark.fsdd
def test_the_page_hears_digits_from_a_fake_microphone(page, fsdd_root, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    mic = tmp_path / "mic.wav"  # the fake device loops its file: 2 s of quiet before it starts again
    y = np.concatenate([fsdd_string(fsdd_root, "285", speaker="jackson"), np.zeros(2 * 8000, np.float32)])
    sf.write(mic, y, 8000, subtype="PCM_16")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=fake_microphone(mic), headless=True)
        tab, _ = open_page(browser, page)
        tab.click("#listen")
        # the device may start mid-string, so the first utterance can be cut: wait for a whole one
        tab.wait_for_function("window.spokenDigits.heard.includes('285')", timeout=40_000)
        shown = tab.text_content("#digits")
        browser.close()
    assert "285" in shown
