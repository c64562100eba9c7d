"""Plots of a run: confusion matrix and learning curves (matplotlib's object API, Agg canvas).

No pyplot, so importing or plotting changes no global matplotlib state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from spoken_digits.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches an Agg canvas to the figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_confusion(
    matrix: Sequence[Sequence[int]],
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "Confusion matrix",
) -> None:
    """Counts with true class on rows and predicted class on columns, each cell labelled."""
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of true class")
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    _save(fig, path)


def plot_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], path: str | os.PathLike[str]) -> None:
    """Loss and accuracy per epoch (train solid, validation dashed), one colour per fold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for k, (fold, rows) in enumerate(histories.items()):
        colour = f"C{k % 10}"
        epochs = [r["epoch"] for r in rows]
        label = "" if len(histories) == 1 else f"{fold} "
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            ax.plot(epochs, [r[f"train_{metric}"] for r in rows], color=colour, label=f"{label}train")
            if rows and f"val_{metric}" in rows[0]:
                ax.plot(epochs, [r[f"val_{metric}"] for r in rows], color=colour, ls="--", label=f"{label}val")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
    acc_ax.legend(fontsize=7, ncol=2 if len(histories) > 1 else 1)
    _save(fig, path)


def plot_bars(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str], *, title: str) -> None:
    """Mean test accuracy per cell with 95% confidence intervals as error bars."""
    from matplotlib.figure import Figure

    names = [str(r.get("label", r["cell"])) for r in rows]
    means = np.array([float(r["mean"]) for r in rows])  # type: ignore[arg-type]
    errors = np.nan_to_num(np.array([float(r["ci95"]) for r in rows]))  # type: ignore[arg-type]
    fig = Figure(figsize=(7.5, 0.42 * len(rows) + 1.2))
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), means, xerr=errors, color="C0", ecolor="black", capsize=3)
    for i, m in enumerate(means):
        ax.text(min(m + errors[i] + 0.01, 1.0), i, f"{m:.3f}", va="center", fontsize=8)
    ax.set(yticks=range(len(rows)), yticklabels=names, xlim=(0, 1.12), xlabel="test accuracy (mean, 95% CI)")
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    _save(fig, path)


def plot_mean_curves(curves: Mapping[str, Sequence[float]], path: str | os.PathLike[str], *, title: str) -> None:
    """Validation accuracy per epoch, averaged over a cell's seeds (and folds), one line per cell."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4))
    ax = fig.add_subplot()
    for k, (cell, values) in enumerate(curves.items()):
        ax.plot(range(1, len(values) + 1), values, color=f"C{k % 10}", ls="-" if k < 10 else "--", label=cell)
    ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=7)
    _save(fig, path)
