"""What the doctor says: findings with stable codes, ranked root cause first."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

# Stable codes, in causal order: when several fire, the earlier one is the more likely root cause
# (constant inputs make labels look decoupled, which makes predictions collapse, not the reverse).
CODES = (
    "nan_values",
    "constant_input",
    "label_format",
    "loss_mismatch",
    "labels_misaligned",
    "labels_decoupled",
    "label_order",
    "reshape_not_transpose",
    "axes_swapped",
    "unscaled_power",
    "sample_rate_mismatch",
    "padding_dominates",
    "double_softmax",
    "sigmoid_with_softmax_loss",
    "lr_too_high",
    "lr_too_low",
    "cannot_overfit_batch",
    "vanishing_gradients",
    "saturated_units",
    "init_loss_off",
    "train_val_gap",
    "prediction_collapse",
    "split_leak",
    "normalisation_leak",
    "class_imbalance",
    "constant_clips",
    "dead_bands",
    "truncated_clips",
    "padding_share",
    "probe",
    "sample_rates",
    "feature_scale",
    "lr_range",
    "time_axis",
)


class Severity(IntEnum):
    """info: for the record; warning: likely hurts; error: stops the model from learning."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One thing the doctor noticed: a stable code, how bad, what it means, the numbers, the fix."""

    code: str
    severity: Severity
    title: str
    evidence: dict[str, Any]
    fix: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered finding code {self.code!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "title": self.title,
            "evidence": _plain(self.evidence),
            "fix": self.fix,
        }


def rank(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, root causes before the symptoms they produce."""
    return sorted(findings, key=lambda f: (-f.severity, CODES.index(f.code)))


@dataclass
class Diagnosis:
    """The ranked findings of one diagnosis and how long it took."""

    findings: list[Finding]
    seconds: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.findings = rank(self.findings)

    @property
    def top(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def healthy(self) -> bool:
        """True when nothing rose above info."""
        return all(f.severity is Severity.INFO for f in self.findings)

    def codes(self, at_least: Severity = Severity.INFO) -> list[str]:
        return [f.code for f in self.findings if f.severity >= at_least]

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "seconds": round(self.seconds, 2),
            "context": _plain(self.context),
            "findings": [f.to_dict() for f in self.findings],
        }

    def render(self) -> str:
        """Plain text for a terminal: a verdict line, then each finding with its evidence and fix."""
        problems = [f for f in self.findings if f.severity > Severity.INFO]
        if problems:
            head = f"{len(problems)} problem(s) found; most likely cause first:"
        else:
            head = "clean bill of health: nothing above info"
        lines = [head, ""]
        for f in self.findings:
            lines.append(f"[{f.severity}] {f.code}: {f.title}")
            if f.evidence:
                lines.append("    evidence: " + ", ".join(f"{k}={_short(v)}" for k, v in f.evidence.items()))
            if f.fix:
                lines.append(f"    fix: {f.fix}")
        lines.append(f"\n({self.seconds:.1f} s)")
        return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(_plain(value))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def _plain(value: Any) -> Any:
    """Numbers and containers as JSON-safe Python values (numpy scalars become floats/ints)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _plain(value.item())
    if isinstance(value, float):
        return round(value, 6) if value == value and abs(value) != float("inf") else str(value)
    return value
