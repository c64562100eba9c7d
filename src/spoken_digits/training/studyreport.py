"""`spoken-digits report`: a study's summary as a Markdown page and a self-contained HTML twin.

Tables of mean accuracy with 95% confidence intervals, bar charts with error bars, mean learning
curves, confusion matrices of the best and worst cells, and per-speaker accuracies.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.atomic import write_json, write_text
from spoken_digits.data.fsdd import CLASSES
from spoken_digits.errors import ParameterError
from spoken_digits.evaluation.report import plot_bars, plot_confusion, plot_mean_curves
from spoken_digits.training.study import aggregate


def render(study: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write report.md, report.html and the PNGs they show into `out` (default: the study folder)."""
    study = Path(study)
    if not (study / "grid.json").is_file():
        raise ParameterError(f"{study}: not a study folder (no grid.json); run `spoken-digits study` first")
    out = Path(out) if out is not None else study
    summary = aggregate(study)
    rows = summary["cells"]
    if not rows:
        raise ParameterError(f"{study}: no finished runs to report yet")
    grid, axes = summary["grid"], summary["axes"]
    name = grid["name"]
    plot_bars(rows, out / f"{name}-accuracy.png", title=f"{name}: test accuracy")
    plot_mean_curves(
        {r["label"]: _mean_curve(study, r) for r in rows}, out / f"{name}-curves.png", title=f"{name}: learning curves"
    )
    best, worst = max(rows, key=lambda r: r["mean"]), min(rows, key=lambda r: r["mean"])
    for tag, row in (("best", best), ("worst", worst)):
        matrix, classes = _pooled_confusion(study, row)
        title = f"{tag}: {row['label']} ({row['mean']:.3f}, {row['n_seeds']} seeds pooled)"
        plot_confusion(matrix, classes, out / f"{name}-confusion-{tag}.png", title=title)
    markdown = _markdown(grid, axes, rows, best, worst, summary.get("machines", []))
    if out.resolve() != study.resolve():  # the numbers travel with the report (docs tables are made from them)
        write_json(out / "summary.json", summary)
    write_text(out / "report.md", markdown)
    write_text(out / "report.html", _html(markdown, out))
    return out / "report.md"


def _mean_curve(study: Path, row: dict[str, Any]) -> list[float]:
    """Validation accuracy by epoch, averaged over every seed (and fold) that reached that epoch."""
    by_epoch: dict[int, list[float]] = {}
    for run in row["runs"]:
        with (study / "runs" / run["folder"] / "log.csv").open(newline="") as handle:
            for line in csv.DictReader(handle):
                if line.get("val_accuracy"):
                    by_epoch.setdefault(int(line["epoch"]), []).append(float(line["val_accuracy"]))
    return [float(np.mean(by_epoch[e])) for e in sorted(by_epoch)]


def _pooled_confusion(study: Path, row: dict[str, Any]) -> tuple[list[list[int]], list[str]]:
    """The cell's confusion matrices summed over its runs, and the class names (FSDD's digits for runs
    written before metrics.json named its classes)."""
    total, classes = None, list(CLASSES)
    for run in row["runs"]:
        metrics = json.loads((study / "runs" / run["folder"] / "metrics.json").read_text())
        matrix = np.asarray(metrics["confusion"], dtype=np.int64)
        total = matrix if total is None else total + matrix
        classes = metrics.get("classes", classes)
    return ([] if total is None else total.tolist()), classes


def _markdown(
    grid: dict[str, Any], axes: list[str], rows: list[dict[str, Any]], best: dict, worst: dict, machines: list
) -> str:
    name = grid["name"]
    lines = [f"# Study `{name}`", "", grid.get("description", ""), ""]
    lines += [f"Base preset `{grid['preset']}`; seeds {grid['seeds']}.", ""]
    lines += [f"Measured on: {describe_machine(m)}." for m in machines] + ([""] if machines else [])
    lines += ["| " + " | ".join([*axes, "accuracy (mean ± sd)", "95% CI", "seeds", "s/epoch", "parameters"]) + " |"]
    lines += ["|" + "---|" * (len(axes) + 5)]
    for r in rows:
        ci = f"± {r['ci95']:.3f}" if r["ci95"] == r["ci95"] else "n/a"
        values = [*(str(r[a]) for a in axes), f"{r['mean']:.3f} ± {r['sd']:.3f}", ci, str(r["n_seeds"])]
        values += [f"{r['seconds_per_epoch']:.2f}", f"{r['n_parameters']:,}"]
        lines.append("| " + " | ".join(values) + " |")
    lines += ["", f"![test accuracy with 95% confidence intervals]({name}-accuracy.png)", ""]
    lines += ["## Learning curves", "", f"![validation accuracy per epoch, mean over seeds]({name}-curves.png)", ""]
    lines += ["## Best and worst cells", ""]
    lines += [f"![confusion matrix of the best cell]({name}-confusion-best.png)"]
    lines += [f"![confusion matrix of the worst cell]({name}-confusion-worst.png)", ""]
    speakers = sorted({s for r in rows for s in r["per_speaker"]})
    if speakers:
        lines += ["## Per speaker", "", "Test accuracy per speaker, mean over seeds.", ""]
        lines += ["| cell | " + " | ".join(speakers) + " |", "|---|" + "---|" * len(speakers)]
        for r in rows:
            cells = [f"{r['per_speaker'][s]:.3f}" if s in r["per_speaker"] else "" for s in speakers]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def describe_machine(machine: dict[str, Any] | None) -> str:
    """One line for where a run was measured (the same seed repeats exactly only there)."""
    if not machine:
        return "not recorded (runs made before machines were recorded)"
    where = (
        machine["device"] if machine.get("device", "cpu") != "cpu" else f"{machine['cpu']}, {machine['cores']} cores"
    )
    return f"{where}, {machine['threads']} torch thread(s) per run, torch {machine['torch']}"


def _html(markdown_text: str, folder: Path) -> str:
    """The Markdown rendered to one self-contained HTML page: every image inlined as a data URI."""
    import markdown

    def inline(match: re.Match[str]) -> str:
        data = base64.b64encode((folder / html.unescape(match.group(1))).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, markdown.markdown(markdown_text, extensions=["tables"]))
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem}img{max-width:100%}"
    )
    head = f"<!doctype html>\n<meta charset='utf-8'>\n<title>spoken-digits report</title>\n<style>{style}</style>"
    return f"{head}\n{body}\n"
