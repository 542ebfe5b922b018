"""Where and in what precision a network runs: the device a flag names and the autocast
dtype a precision setting means on it.

Training stages, evaluation, relabelling and the Python API all place networks on a
device; this module is torch's side of that, kept below all of them so that none has to
import a training stage to pick a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from laom.errors import LaomError


def resolve_device(name: str) -> torch.device:
    """The device ``--device`` names; refused here, naming the flag, when torch would only
    fail later at the first tensor moved to it (CUDA asked for on a machine without it)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LaomError(f"--device {name}: CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise LaomError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from None


def cpu_has_fast_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32).

    "auto" picks bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), where the
    conv stacks run 2-3x faster than in fp32 (benchmarks/lam_speed.py).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        if device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16()):
            return torch.bfloat16
        return None
    raise LaomError(f"--precision {precision}: expected auto, fp32 or bf16")


def keyed_precision(precision: str, device: str = "auto") -> str:
    """``--precision`` as a cache key names it: what it computes, not what was typed.

    Why: "auto" is bf16 on a CPU with AMX or AVX512-BF16 and fp32 on one without, and a
    study's machine may change between sessions, so "auto" alone would let an fp32 result
    stand for a bf16 one. "auto" that means fp32 stays "auto" (the keys recorded before
    this rule); "auto" that means bf16 becomes "bf16", as if it had been typed.
    """
    if precision != "auto":
        return precision
    try:
        dtype = autocast_dtype(precision, resolve_device(device))
    except LaomError:  # a device this machine lacks: the stage refuses it itself
        return precision
    return "bf16" if dtype == torch.bfloat16 else precision


@dataclass
class Runtime:
    """Device and autocast dtype of a stage, handed to every pass that runs a network, so
    that labelling and probing run in the precision the stage trains in."""

    device: torch.device
    amp_dtype: torch.dtype | None

    def autocast(self) -> Any:
        """Context manager: bf16 autocast when enabled, else a no-op."""
        return torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )
