"""Models: the ResNet family, LAOM's MLP heads, FSQ, augmentations and the latent action
models (LAPO, LAOM, each optionally with a labelled action head), plus saving/loading
them for later stages. The acting policies and their file are in
:mod:`laom.models.policy`, the device and precision networks run in are in
:mod:`laom.models.device`. Which class each method trains is the method registry's
(:mod:`laom.methods`, torch-free, below this layer)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from laom import methods
from laom.errors import LaomError
from laom.models.laom import LAOM
from laom.models.lapo import LAPO


def model_class(path: str) -> type[nn.Module]:
    """The class a registry entry names as ``module:Class`` (laom.methods.LAMSpec.model)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def lam_class(method: str) -> type[nn.Module]:
    """The latent action model class ``method`` trains (LaomError for a method without one)."""
    spec = methods.get(method).lam
    if spec is None:
        raise LaomError(f"--method {method}: trains no latent action model")
    return model_class(spec.model)


def _saved_classes() -> dict[str, type[nn.Module]]:
    """Class by the name saved LAMs give it: its ``method`` attribute (lapo, laom). One
    class serves several methods (laom and laom-labels), so the file's own meta, not the
    class, says which method made it."""
    out: dict[str, type[nn.Module]] = {}
    for spec in methods.lam_methods():
        cls = lam_class(spec.name)
        out.setdefault(cls.method, cls)
    return out


LAM_CLASSES = _saved_classes()
LAM_FORMAT = "laom-lam/1"

__all__ = ["LAM_CLASSES", "LAOM", "LAPO", "lam_class", "load_lam", "model_class", "save_lam"]


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
    if payload.get("class") not in LAM_CLASSES:
        raise LaomError(
            f"latent action model {path}: unknown class {payload.get('class')!r} (expected {', '.join(LAM_CLASSES)})"
        )
    model = LAM_CLASSES[payload["class"]](**payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["meta"]
