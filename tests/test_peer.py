"""benchmarks.peer: pocketsphinx's digit grammar on real FSDD clips, scored beside ours on the same waveforms."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from benchmarks import peer

from spoken_digits.config import RunConfig, SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.evaluation import robustness
from spoken_digits.evaluation.robustness import Corrupter, select_conditions
from spoken_digits.frontend import audio


class Always3:
    """A stand-in for our model: answers "3" to every clip."""

    config, info, classes = RunConfig(), {}, [str(d) for d in range(10)]

    def each_probabilities(self, waves):
        return [np.eye(10)[3] for _ in waves]


@pytest.mark.fsdd
def test_digit_grammar_hears_clean_clips_and_both_score_the_same_clips(fsdd_root):
    pytest.importorskip("pocketsphinx")
    ours, sphinx = Always3(), peer.Sphinx()
    clips = fsdd.index(fsdd.recordings_dir(fsdd_root))
    tested = robustness.tested_clips(ours, clips, SplitConfig(), seed=0, limit=20)
    assert sorted(c.digit for c, _ in tested) == sorted(2 * list(range(10))) and all(c.take < 5 for c, _ in tested)
    waves = [audio.read_audio(c.path, 8000) for c, _ in tested]
    labels, refused = sphinx.labels(waves, 8000)
    assert np.mean([label == str(c.digit) for label, (c, _) in zip(labels, tested, strict=True)]) >= 0.5
    assert refused == labels.count(None) < 5
    assert sphinx.labels(waves[::-1], 8000)[0] == labels[::-1]  # each clip decoded alone, whatever came before
    for condition in select_conditions(["clean", "white-10db", "pad-3s"]):
        row = peer.score_condition(ours, sphinx, Corrupter(8000, 0), condition, tested, waves)
        assert row["n"] == row["spoken-digits"]["n"] == row["pocketsphinx"]["n"] == 20
        assert row["spoken-digits"]["accuracy"] == 0.1  # "3" is right twice in twenty
    assert "| clean | 0.100 |" in peer.table({"conditions": [row | {"condition": "clean"}]})


def test_without_pocketsphinx_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import pocketsphinx now fails
    monkeypatch.setattr(sys, "argv", ["peer", "no-such-model.pt", "--conditions", "clean"])
    with pytest.raises(SystemExit, match=r"pocketsphinx is not installed; pip install 'spoken-digits\[peer\]'"):
        peer.main()
