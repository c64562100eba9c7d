"""Calibrating a trained fold: the temperature that makes its probabilities honest, fitted on held-out
validation clips heard as training hears them (augmented), and the calibration it then has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from spoken_digits.evaluation.calibration import TEMPERATURES, calibration_report, fit_temperature, softmax
from spoken_digits.frontend.batches import FeatureSet, concat
from spoken_digits.training.filler import add_filler
from spoken_digits.training.train import Batches, predict_logits
from spoken_digits.training.views import augmented_views

VIEWS = 1  # augmented copies of each validation clip the temperature is fitted on (beside the clean ones)


def held_out_views(
    clean: Batches,
    waves: Batches,
    augment: Callable[[FeatureSet, torch.Generator], FeatureSet] | None,
    classes: tuple[str, ...],
    filler: float,
    *,
    seed: int,
) -> Batches:
    """The validation clips as calibration hears them: as they are (`clean`, features) and, when the run
    augments, VIEWS augmented copies of them (`waves`) with their own filler clips, so that one temperature
    fits clean and noisy recordings alike."""
    if augment is None or not len(clean):
        return clean
    if filler:
        waves = add_filler(waves, classes, filler, seed=seed + 1)
    views = augmented_views(waves, augment, VIEWS, seed=seed + 1)
    return concat([clean, views]) if isinstance(clean, FeatureSet) else views


def calibrate(model: nn.Module, held_out: Batches) -> dict[str, Any]:
    """The temperature fitted on `held_out` and its ECE before and after (temperature 1 without clips)."""
    if not len(held_out):
        return {"temperature": 1.0, "fitted_on": 0}
    logits = predict_logits(model, held_out).cpu().numpy()
    truth = held_out.y.cpu().numpy()
    temperature = fit_temperature(logits, truth)
    return {
        "temperature": temperature,
        "at_bound": bool(temperature in (TEMPERATURES[0], TEMPERATURES[-1])),  # the slice could not say more
        "fitted_on": len(truth),
        "ece_before": calibration_report(softmax(logits), truth)["ece"],
        **calibration_report(softmax(logits, temperature), truth),
    }
