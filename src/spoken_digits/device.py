"""Torch devices: check a device name before any work, and describe the machine numbers were measured on."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from spoken_digits.errors import ParameterError


def check_device(name: str) -> torch.device:
    """The torch device `name`, or a ParameterError when it is malformed or not on this machine."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ParameterError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {name!r} requested but CUDA is not available on this machine; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ParameterError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def machine(device: str) -> dict[str, Any]:
    """Where a run's numbers were measured: the same config and seed repeat them exactly only on the
    same machine with the same torch version and thread count (float sums are ordered by threads)."""
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(check_device(device)) if device.startswith("cuda") else "cpu",
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()
