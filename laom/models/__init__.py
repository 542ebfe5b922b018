"""Models: the ResNet family, LAOM's MLP heads, FSQ, augmentations and the latent action
models (LAPO, LAOM, LAOM+supervision), plus saving/loading them for later stages. The
acting policies and their file are in :mod:`laom.models.policy`, the device and precision
networks run in are in :mod:`laom.models.device`; the bottom layer, importing no other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from laom.errors import LaomError
from laom.models.laom import LAOM
from laom.models.lapo import LAPO

LAM_CLASSES: dict[str, type[nn.Module]] = {"lapo": LAPO, "laom": LAOM}
LAM_FORMAT = "laom-lam/1"

__all__ = ["LAM_CLASSES", "LAOM", "LAPO", "load_lam", "save_lam"]


def save_lam(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write a LAM with everything needed to rebuild it (class, init kwargs, data signature).

    Atomic (temp file + rename) so a kill never leaves a half-written model behind.
    """
    path = Path(path)
    payload = {
        "format": LAM_FORMAT,
        "class": model.method,
        "kwargs": model.kwargs,
        "state_dict": model.state_dict(),
        "meta": meta,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_lam(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a LAM saved by :func:`save_lam`; returns (model in eval mode, meta).

    ``meta`` holds the training method, img_hw, frame_stack, action_dim, state_dim and
    the dataset's domain/task, for checking that a later stage feeds it matching data.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "lam.pt"
    if not path.is_file():
        raise LaomError(f"latent action model {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise LaomError(f"latent action model {path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != LAM_FORMAT:
        raise LaomError(
            f"latent action model {path}: not a LAM file (expected format {LAM_FORMAT})"
        )
    model = LAM_CLASSES[payload["class"]](**payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["meta"]
