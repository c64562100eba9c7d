"""The study runner and its report, on a small grid of synthetic clips (few epochs)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from spoken_digits.apps.cli import main
from spoken_digits.errors import ParameterError
from spoken_digits.training.grids import BUILTIN, configure, grid_from_dict, load_grid, with_overrides
from spoken_digits.training.study import confidence_interval, run_study
from spoken_digits.training.studyreport import render

GRID = """
name = "tiny"
preset = "clean"
seeds = 2
description = "two models x two seeds"
base = {"train.epochs" = 2, "train.patience" = 0}

[axes.model]
seed_lstm = {}
cnn = {"model.name" = "cnn", "model.params.channels" = [8, 16]}
"""


@pytest.fixture(scope="module")
def tiny_study(synthetic_fsdd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    (folder / "tiny.toml").write_text(GRID)
    lines: list[str] = []
    summary = run_study(load_grid(str(folder / "tiny.toml")), folder / "out", data=synthetic_fsdd, say=lines.append)
    return folder, summary, lines


def test_a_grid_runs_every_cell_and_seed_and_aggregates(tiny_study):
    folder, summary, lines = tiny_study
    assert "4 runs, 0 finished before, 4 to train" in lines[0]
    cells = {row["model"]: row for row in summary["cells"]}
    assert set(cells) == {"seed_lstm", "cnn"}
    for row in cells.values():
        scores = [
            json.loads((folder / "out" / "runs" / run["folder"] / "metrics.json").read_text())["test_accuracy"]
            for run in row["runs"]
        ]
        assert row["n_seeds"] == 2 and row["mean"] == pytest.approx(np.mean(scores))
        assert row["sd"] == pytest.approx(np.std(scores, ddof=1))
        assert row["ci95"] == pytest.approx(12.706 * row["sd"] / math.sqrt(2))
        assert row["seconds_per_epoch"] > 0 and row["n_parameters"] > 0
        assert set(row["per_speaker"]) == {"anna", "bert", "carl"}
    assert cells["cnn"]["n_parameters"] != cells["seed_lstm"]["n_parameters"]  # the override reached the model
    assert (folder / "out" / "summary.csv").read_text().splitlines()[0].startswith("model,n_seeds,mean")


def test_a_rerun_skips_finished_runs_and_trains_only_what_is_missing(tiny_study, synthetic_fsdd):
    folder, summary, _ = tiny_study
    grid = load_grid(str(folder / "tiny.toml"))
    lines: list[str] = []
    assert run_study(grid, folder / "out", data=synthetic_fsdd, say=lines.append)["cells"] == summary["cells"]
    assert "4 finished before, 0 to train" in lines[0]
    removed = summary["cells"][0]["runs"][0]["folder"]
    shutil.rmtree(folder / "out" / "runs" / removed)
    lines.clear()
    again = run_study(grid, folder / "out", data=synthetic_fsdd, say=lines.append)
    assert "3 finished before, 1 to train" in lines[0] and removed in lines[1]
    assert again["cells"][0]["mean"] == pytest.approx(summary["cells"][0]["mean"])  # same seed, same numbers


def test_the_report_is_markdown_and_self_contained_html(tiny_study, tmp_path):
    folder, _, _ = tiny_study
    page = render(folder / "out", tmp_path)
    markdown = page.read_text()
    assert "| model | accuracy (mean ± sd) | 95% CI |" in markdown and "## Per speaker" in markdown
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and 'src="tiny-' not in html
    for png in ("tiny-accuracy.png", "tiny-curves.png", "tiny-confusion-best.png", "tiny-confusion-worst.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_confidence_interval_uses_student_t():
    mean, sd, half = confidence_interval([0.90, 0.92, 0.94, 0.96, 0.98])
    assert (mean, sd) == pytest.approx((0.94, math.sqrt(0.001)))
    assert half == pytest.approx(2.776 * sd / math.sqrt(5))
    assert math.isnan(confidence_interval([0.5])[2])


def test_bad_grids_and_keys_are_refused_before_any_training(tmp_path):
    with pytest.raises(ParameterError, match=r"unknown config key 'train\.epoch'"):
        configure("default", {"train.epoch": 3})
    with pytest.raises(ParameterError, match="unknown preset"):
        configure("default", {"preset": "nope"})
    (tmp_path / "bad.toml").write_text('name = "x"\ncolour = "red"\n')
    with pytest.raises(ParameterError, match="unknown grid key"):
        load_grid(str(tmp_path / "bad.toml"))
    (tmp_path / "bad2.toml").write_text('[axes.model]\nm = {"model.name" = "resnet"}\n')
    with pytest.raises(ParameterError, match="unknown model"):
        load_grid(str(tmp_path / "bad2.toml"))
    with pytest.raises(ParameterError, match="built-in grids"):
        load_grid("no-such-grid")


def test_builtin_grids_build_valid_configs_for_every_cell():
    for name, grid in BUILTIN.items():
        runs = grid.runs()
        assert len({r.folder for r in runs}) == len(runs), name
    layout = {r.cell: r.config for r in BUILTIN["layout"].runs() if r.seed == 0}
    assert layout["features=raw power (seed),layout=swapped"].n_features == 16
    assert layout["features=raw power (seed),layout=swapped"].preset == "seed"


def test_the_cli_lists_grids_and_runs_a_study(synthetic_fsdd, tmp_path, capsys):
    assert main(["study", "--list"]) == 0
    assert "layout" in capsys.readouterr().out
    (tmp_path / "g.toml").write_text(GRID)
    args = ["study", str(tmp_path / "g.toml"), "--out", str(tmp_path / "s"), "--data", str(synthetic_fsdd)]
    assert main([*args, "--seeds", "1", "--set", "train.epochs=1"]) == 0
    assert "seed_lstm" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "report.html").is_file()
    assert main(["report", str(tmp_path)]) == 2


def test_parallel_workers_give_the_same_numbers_as_one_process(tiny_study, synthetic_fsdd, tmp_path):
    folder, summary, _ = tiny_study
    grid = with_overrides(load_grid(str(folder / "tiny.toml")), {}, seeds=1)
    parallel = run_study(grid, tmp_path / "parallel", data=synthetic_fsdd, workers=2)
    first_seed = {row["model"]: row["runs"][0]["test_accuracy"] for row in summary["cells"]}
    assert {row["model"]: row["mean"] for row in parallel["cells"]} == pytest.approx(first_seed)


ONE_RUN = {
    "name": "one",
    "seeds": 1,
    "base": {"train.patience": 0, "model.params.channels": [8, 16]},
    "axes": {"model": {"cnn": {"model.name": "cnn"}}},
}


def test_changed_overrides_train_new_runs_and_the_summary_holds_only_theirs(synthetic_fsdd, tmp_path):
    # `spoken-digits study one --set train.epochs=1`, then `... --set train.epochs=3` into the same folder
    grid = grid_from_dict(ONE_RUN)
    first = run_study(with_overrides(grid, {"train.epochs": 1}), tmp_path, data=synthetic_fsdd)
    lines: list[str] = []
    second = run_study(with_overrides(grid, {"train.epochs": 3}), tmp_path, data=synthetic_fsdd, say=lines.append)
    assert "1 runs, 0 finished before, 1 to train" in lines[0]
    (row,) = second["cells"]
    (run,) = row["runs"]
    folder = tmp_path / "runs" / run["folder"]
    assert json.loads((folder / "config.json").read_text())["train"]["epochs"] == 3
    assert run["test_accuracy"] == json.loads((folder / "metrics.json").read_text())["test_accuracy"]
    before = first["cells"][0]["runs"][0]
    assert run["folder"] != before["folder"]
    trained = [json.loads((tmp_path / "runs" / r["folder"] / "metrics.json").read_text()) for r in (before, run)]
    assert [m["epochs_run"] for m in trained] == [1, 3]  # a new run, of 3 epochs (accuracies may tie at chance)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert [r["folder"] for c in saved["cells"] for r in c["runs"]] == [run["folder"]]
    lines.clear()
    again = run_study(with_overrides(grid, {"train.epochs": 1}), tmp_path, data=synthetic_fsdd, say=lines.append)
    assert "1 finished before, 0 to train" in lines[0] and again["cells"][0]["runs"] == first["cells"][0]["runs"]


def test_a_run_folder_holding_another_config_is_refused_with_what_differs(synthetic_fsdd, tmp_path):
    grid = with_overrides(grid_from_dict(ONE_RUN), {"train.epochs": 3})
    (run,) = grid.runs()
    folder = tmp_path / "runs" / run.folder
    folder.mkdir(parents=True)
    edited = run.config.to_dict()
    edited["train"]["epochs"] = 5
    (folder / "config.json").write_text(json.dumps(edited))
    with pytest.raises(ParameterError, match=r"was trained with train\.epochs=5 \(study: 3\); delete those folders"):
        run_study(grid, tmp_path, data=synthetic_fsdd, download=False)
    assert not (tmp_path / "grid.json").exists() and not (folder / "metrics.json").exists()


def test_finished_runs_of_a_study_from_before_the_config_key_are_reused(tiny_study, synthetic_fsdd, tmp_path):
    folder, summary, _ = tiny_study
    shutil.copytree(folder / "out", tmp_path / "old")
    for run in load_grid(str(folder / "tiny.toml")).runs():  # back to the old CELL-sSEED names
        (tmp_path / "old" / "runs" / run.folder).rename(tmp_path / "old" / "runs" / run.legacy_folder)
    lines: list[str] = []
    again = run_study(load_grid(str(folder / "tiny.toml")), tmp_path / "old", data=synthetic_fsdd, say=lines.append)
    assert "4 finished before, 0 to train" in lines[0]
    assert [r["mean"] for r in again["cells"]] == [r["mean"] for r in summary["cells"]]
