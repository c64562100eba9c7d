"""Data sources: class folders, manifests, Speech Commands and FSDD read into one Dataset; their checks."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import SR, digit_voice

from spoken_digits.config import SplitConfig, SplitName, preset
from spoken_digits.data import fsdd
from spoken_digits.data.clips import FILLER
from spoken_digits.data.sources import open_dataset
from spoken_digits.data.splits import make_folds
from spoken_digits.errors import DatasetError, ParameterError
from spoken_digits.training.experiment import train_run
from spoken_digits.training.rundata import split_note

WORDS = ("alpha", "bravo", "charlie")


def _write(path: Path, word: int = 0, *, sr: int = SR, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, digit_voice(word, sr=sr, seed=seed), sr, subtype="PCM_16")
    return path


def _folders(root: Path, *, speakers: tuple[str, ...] = ("ann", "bob", "cat", "dan"), takes: int = 2) -> Path:
    for w, word in enumerate(WORDS):
        for s, speaker in enumerate(speakers):
            for take in range(takes):
                _write(root / word / f"{speaker}_{take}.wav", w, seed=100 * w + 10 * s + take)
    return root


def test_class_folders_any_words_in_natural_order(tmp_path):
    root = _folders(tmp_path / "kw")
    _write(root / "item10" / "ann_0.wav")
    _write(root / "item10" / "bob_0.wav")
    _write(root / "item2" / "ann_0.wav")
    _write(root / "item2" / "bob_0.wav")
    (root / "alpha" / "notes.txt").write_text("not audio")  # ignored: not an audio suffix
    data = open_dataset(root, speaker_pattern=r"^(?P<speaker>[a-z]+)_")
    assert data.classes == ("alpha", "bravo", "charlie", "item2", "item10")  # 2 before 10
    assert data.source == "folders" and len(data.clips) == 3 * 4 * 2 + 4
    assert {c.speaker for c in data.clips} == {"ann", "bob", "cat", "dan"}
    assert [c.path.name for c in data.clips] == sorted(c.path.name for c in data.clips)
    assert data.labels.tolist() == [data.classes.index(c.label) for c in data.clips]


def test_class_folders_with_split_folders_give_the_official_split(tmp_path):
    for split, takes in (("train", (0, 1, 2)), ("test", (3,))):
        for w, word in enumerate(WORDS):
            for take in takes:
                _write(tmp_path / split / word / f"s{take}_{word}.wav", w, seed=take)
    data = open_dataset(tmp_path)
    (fold,) = make_folds(data.clips, SplitConfig(SplitName.OFFICIAL))
    assert sorted(data.clips[i].path.parent.parent.name for i in fold.test) == ["test"] * 3
    assert len(fold.train) == 9


def test_official_without_own_split_holds_out_speakers_else_random(tmp_path):
    six = ("ann", "bob", "cat", "dan", "eve", "fay")
    data = open_dataset(_folders(tmp_path / "a", speakers=six), speaker_pattern=r"^([a-z]+)_")
    (fold,) = make_folds(data.clips, SplitConfig(SplitName.OFFICIAL))
    assert fold.name == "speakers"
    test_speakers = {data.clips[i].speaker for i in fold.test}
    assert test_speakers and not test_speakers & {data.clips[i].speaker for i in fold.train}
    unknown = open_dataset(tmp_path / "a")  # no pattern: speakers unknown
    assert make_folds(unknown.clips, SplitConfig(SplitName.OFFICIAL))[0].name == "random"
    assert "because the speakers are unknown (give --speaker-pattern" in split_note(unknown, SplitName.OFFICIAL)
    with pytest.raises(DatasetError, match=r"needs every clip's speaker.*--speaker-pattern"):
        make_folds(unknown.clips, SplitConfig(SplitName.LOSO))
    four = open_dataset(_folders(tmp_path / "b"), speaker_pattern=r"^([a-z]+)_")  # one speaker is 25%: too many
    assert make_folds(four.clips, SplitConfig(SplitName.OFFICIAL))[0].name == "random"
    assert "because 4 speakers are too few" in split_note(four, SplitName.OFFICIAL)


def test_a_blank_speaker_cell_is_named_when_it_turns_official_into_random(tmp_path):
    six = ("ann", "bob", "cat", "dan", "eve", "fay")
    _folders(tmp_path / "audio", speakers=six)
    rows = ["path,label,speaker"] + [
        f"audio/{word}/{s}_{t}.wav,{word},{s}" for word in WORDS for s in six for t in range(2)
    ]
    (tmp_path / "full.csv").write_text("\n".join(rows) + "\n")
    assert make_folds(open_dataset(tmp_path / "full.csv").clips, SplitConfig())[0].name == "speakers"
    rows[5] = rows[5].rsplit(",", 1)[0] + ","  # line 6: the speaker cell left blank
    (tmp_path / "blank.csv").write_text("\n".join(rows) + "\n")
    data = open_dataset(tmp_path / "blank.csv")
    assert make_folds(data.clips, SplitConfig())[0].name == "random"
    note = split_note(data, SplitName.OFFICIAL)
    assert f"{tmp_path / 'blank.csv'}, line 6 has a blank speaker cell (audio/alpha/cat_0.wav)" in note
    assert "holds out random clips (speakers shared between training and test)" in note


def test_a_speaker_column_and_a_speaker_pattern_together_are_refused(tmp_path):
    _folders(tmp_path / "audio")
    (tmp_path / "m.csv").write_text("path,label,speaker\naudio/alpha/ann_0.wav,alpha,ann\n")
    with pytest.raises(DatasetError, match=r"m.csv: --speaker-pattern '\^\(\.\+\)_' given, but the manifest has a "
                       r"speaker column \(speaker\).*drop --speaker-pattern"):  # fmt: skip
        open_dataset(tmp_path / "m.csv", speaker_pattern="^(.+)_")


def test_filler_folders_are_one_filler_class_and_other_underscored_folders_are_named(tmp_path):
    root = _folders(tmp_path / "kw")
    _write(root / "_unknown_" / "ann_0.wav")
    _write(root / "_unknown_" / "bob_0.wav")
    _write(root / "_background_" / "hum.wav")
    _write(root / "_scratch_" / "ann_1.wav")
    data = open_dataset(root)
    assert data.classes == (*WORDS, FILLER)
    fillers = sorted(c.path.name for c in data.clips if c.label == FILLER)
    assert fillers == ["ann_0.wav", "bob_0.wav", "hum.wav"]
    assert not any(c.path.parent.name == "_scratch_" for c in data.clips)
    (note,) = data.notes
    assert f"left out 1 folder(s) whose names start with _ ({root / '_scratch_'})" in note
    assert "_unknown_ and _background_ are the filler class" in note
    assert not open_dataset(_folders(tmp_path / "plain")).notes


def test_a_manifest_row_labelled_background_is_the_filler_class(tmp_path):
    _folders(tmp_path / "audio")
    _write(tmp_path / "audio" / "noise" / "hum.wav")
    _write(tmp_path / "audio" / "noise" / "fan.wav")
    rows = ["alpha/ann_0.wav,alpha", "alpha/bob_0.wav,alpha", "noise/hum.wav,_background_", "noise/fan.wav,_unknown_"]
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"audio/{r}\n" for r in rows))
    assert open_dataset(tmp_path / "m.csv").classes == ("alpha", FILLER)


def test_speakers_split_is_seeded_disjoint_and_about_the_fraction(tmp_path):
    speakers = tuple(f"sp{i:02d}" for i in range(20))
    data = open_dataset(_folders(tmp_path, speakers=speakers, takes=1), speaker_pattern=r"^(sp\d+)_")
    a, b = (make_folds(data.clips, SplitConfig(SplitName.SPEAKERS, test_fraction=0.2), seed=s)[0] for s in (0, 1))
    assert 0.15 <= len(a.test) / len(data.clips) <= 0.25
    assert not {data.clips[i].speaker for i in a.test} & {data.clips[i].speaker for i in a.train}
    assert not np.array_equal(a.test, b.test)


def test_manifest_columns_speakers_and_splits(tmp_path):
    _folders(tmp_path / "audio")
    rows = ["file_name,label,speaker,split"]
    for w, word in enumerate(WORDS):
        for s in ("ann", "bob", "cat", "dan"):
            rows.append(f"audio/{word}/{s}_0.wav,{word.upper()},{s},{'test' if s == 'dan' else 'train'}")
            rows.append(f"audio/{word}/{s}_1.wav,{word.upper()},{s},{'validation' if w == 0 else 'train'}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    data = open_dataset(tmp_path)  # a folder holding metadata.csv, as Hugging Face audiofolder
    assert data.source == "manifest" and data.classes == ("ALPHA", "BRAVO", "CHARLIE")
    assert {c.split for c in data.clips} == {"train", "validation", "test"}
    (fold,) = make_folds(data.clips, SplitConfig())
    assert {data.clips[i].speaker for i in fold.test} == {"dan"}
    assert open_dataset(tmp_path / "metadata.csv").clips == data.clips


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("audio/alpha/nobody.wav,alpha", r"line 3: audio/alpha/nobody.wav does not exist"),
        ("audio/alpha/ann_1.wav,", r"line 3: the label column is blank"),
        (",alpha", r"line 3: the path column is blank"),
        ("../outside.wav,alpha", r"line 3: ../outside.wav is outside the dataset folder"),
        ("audio/alpha/ann_0.wav,alpha", r"line 3: audio/alpha/ann_0.wav is listed twice \(also line 2\)"),
        ("audio/alpha/ann_1.wav,alpha,nonsense", r"line 3: unknown split 'nonsense'"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path, row, message):
    _folders(tmp_path / "data" / "audio")
    _write(tmp_path / "outside.wav")
    manifest = tmp_path / "data" / "list.csv"
    extra = ",split" if row.count(",") == 2 else ""
    first = "audio/alpha/ann_0.wav,alpha" + (",train" if extra else "")
    manifest.write_text(f"path,label{extra}\n{first}\n{row}\n")
    with pytest.raises(DatasetError, match=message) as err:
        open_dataset(manifest)
    assert str(manifest) in str(err.value)


def test_manifest_lines_are_counted_as_an_editor_counts_them_and_tsv_reads(tmp_path):
    _folders(tmp_path / "audio")
    (tmp_path / "m.csv").write_text("path,label\naudio/alpha/ann_0.wav,alpha\n\naudio/alpha/gone.wav,alpha\n")
    with pytest.raises(DatasetError, match=r"line 4: audio/alpha/gone.wav does not exist"):
        open_dataset(tmp_path / "m.csv")
    (tmp_path / "m.tsv").write_text("path\tlabel\naudio/alpha/ann_0.wav\talpha\naudio/alpha/ann_1.wav\talpha\n")
    assert [c.label for c in open_dataset(tmp_path / "m.tsv").clips] == ["alpha", "alpha"]


def test_split_folders_by_any_usual_name_and_never_beside_classes(tmp_path):
    for split in ("training", "val", "testing"):
        for w, word in enumerate(WORDS):
            _write(tmp_path / "a" / split / word / f"{split}_{word}.wav", w)
    assert {c.split for c in open_dataset(tmp_path / "a").clips} == {"train", "validation", "test"}
    _write(tmp_path / "a" / "delta" / "x.wav")
    with pytest.raises(DatasetError, match=r"split folders \(testing, training, val\) beside other folders \(delta\)"):
        open_dataset(tmp_path / "a")


def test_manifest_header_must_name_path_and_label(tmp_path):
    (tmp_path / "m.csv").write_text("wav,word\na.wav,x\n")
    with pytest.raises(DatasetError, match=r"needs a path column .* it has: wav, word"):
        open_dataset(tmp_path / "m.csv")


def test_speech_commands_lists_speakers_and_background_noise(tmp_path):
    for w, word in enumerate(("one", "two")):
        for s, speaker in enumerate(("0a1b2c3d", "ffee0011", "12345678")):
            _write(tmp_path / word / f"{speaker}_nohash_0.wav", w, seed=s)
    _write(tmp_path / "_background_noise_" / "running_tap.wav")
    (tmp_path / "validation_list.txt").write_text("one/ffee0011_nohash_0.wav\ntwo/ffee0011_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("one/12345678_nohash_0.wav\ntwo/12345678_nohash_0.wav\n")
    data = open_dataset(tmp_path)
    assert data.source == "speech-commands" and data.classes == ("one", "two")
    assert [p.name for p in data.noise] == ["running_tap.wav"]
    split_of = {(c.label, c.speaker): c.split for c in data.clips}
    assert split_of[("one", "12345678")] == "test" and split_of[("two", "ffee0011")] == "validation"
    assert split_of[("one", "0a1b2c3d")] == "train"
    assert open_dataset(tmp_path, classes="two").classes == ("two",)
    with pytest.raises(ParameterError, match="--classes: three not in this dataset; it has: one, two"):
        open_dataset(tmp_path, classes="two,three")


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = _folders(tmp_path)
    (root / "delta").mkdir()
    with pytest.raises(DatasetError, match=r"delta: empty class folder"):
        open_dataset(root)


def test_class_with_too_few_clips_is_named_with_its_files(tmp_path):
    root = _folders(tmp_path)
    _write(root / "echo" / "ann_0.wav")
    with pytest.raises(DatasetError, match=r"fewer than 2 clips: echo; their files: echo: .*echo/ann_0.wav"):
        open_dataset(root)


def test_unreadable_files_are_named_or_skipped_and_counted(tmp_path):
    root = _folders(tmp_path)
    (root / "alpha" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (root / "bravo" / "empty.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"2 unreadable file\(s\): .*broken.wav .*empty.wav.*--skip-bad"):
        open_dataset(root)
    data = open_dataset(root, skip_bad=True)
    assert sorted(Path(f).name for f in data.skipped) == ["broken.wav", "empty.wav"]
    assert len(data.clips) == 3 * 4 * 2


def test_mixed_sample_rates_are_an_error_unless_accepted(tmp_path):
    root = _folders(tmp_path)
    _write(root / "alpha" / "zed_0.wav", sr=16000)
    with pytest.raises(DatasetError, match=r"mixed sample rates \(8000 Hz: 24 files.*16000 Hz: 1 files.*--mixed-rates"):
        open_dataset(root)
    assert len(open_dataset(root, mixed_rates=True).clips) == 25


def test_unknown_layouts_and_paths_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_dataset(tmp_path / "nowhere")
    _write(tmp_path / "loose" / "hello.wav")
    with pytest.raises(DatasetError, match=r"not FSDD's .* its own folder, or list them in a CSV manifest"):
        open_dataset(tmp_path / "loose")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders with audio files"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(ParameterError, match="not a regular expression"):
        open_dataset(tmp_path, speaker_pattern="(")


def test_identical_recordings_across_a_split_are_refused_before_training(tmp_path):
    """Real copies, found by train_run from the files' bytes: a test file equal to a training file is refused,
    and so is one equal up to its name only; different recordings of the same word are not."""
    for split, speakers in (("train", ("ann", "bob")), ("test", ("cat",))):
        for w, word in enumerate(WORDS):
            for speaker in speakers:
                _write(tmp_path / "ok" / split / word / f"{speaker}_0.wav", w, seed=100 * w + ord(speaker[0]))
    cfg = dataclasses.replace(preset("clean"), train=dataclasses.replace(preset("clean").train, epochs=1))
    metrics = train_run(cfg, tmp_path / "run-ok", data=tmp_path / "ok")  # distinct files: trains
    assert metrics["n_test"] == 3
    copy = tmp_path / "copied"
    shutil.copytree(tmp_path / "ok", copy)
    shutil.copyfile(copy / "train" / "bravo" / "bob_0.wav", copy / "test" / "bravo" / "cat_0.wav")
    with pytest.raises(DatasetError, match=r"1 test file\(s\) of fold official are byte-identical to training "
                       r"files .*train/bravo/bob_0.wav = .*test/bravo/cat_0.wav; remove the copies"):  # fmt: skip
        train_run(cfg, tmp_path / "run-copied", data=copy)
    assert not (tmp_path / "run-copied" / "config.json").exists()  # refused before anything was written


def relay(recordings: Path, root: Path, layout: str) -> Path:
    """FSDD laid out as class folders (train/ and test/ by take) or as a manifest with speaker and split
    columns, by symbolic links (nothing copied)."""
    rows = ["path,label,speaker,split"]
    for clip in fsdd.index(recordings):
        split = "test" if clip.take < 5 else "train"
        if layout == "folders":
            target = root / split / str(clip.digit) / clip.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(clip.path.resolve(), target)
        else:
            target = root / "audio" / clip.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(clip.path.resolve(), target)
            rows.append(f"audio/{clip.path.name},{clip.digit},{clip.speaker},{split}")
    if layout == "manifest":
        (root / "fsdd.csv").write_text("\n".join(rows) + "\n")
        return root / "fsdd.csv"
    return root


@pytest.mark.fsdd
@pytest.mark.parametrize("layout", ["folders", "manifest"])
def test_fsdd_relaid_gives_the_same_clips_and_splits(fsdd_root, tmp_path, layout):
    builtin = open_dataset(fsdd_root)
    relaid = open_dataset(relay(fsdd.recordings_dir(fsdd_root), tmp_path, layout),
                          speaker_pattern=r"^\d_([a-z]+)_" if layout == "folders" else None)  # fmt: skip
    assert builtin.classes == relaid.classes
    key = [(c.path.name, c.label, c.speaker, c.split) for c in builtin.clips]
    assert key == [(c.path.name, c.label, c.speaker, c.split) for c in relaid.clips]
    for split in (SplitName.OFFICIAL, SplitName.RANDOM, SplitName.LOSO, SplitName.SPEAKERS):
        a, b = (make_folds(d.clips, SplitConfig(split), seed=3) for d in (builtin, relaid))
        assert [(f.name, f.train.tolist(), f.test.tolist()) for f in a] == [
            (f.name, f.train.tolist(), f.test.tolist()) for f in b
        ]
