"""One file format for every model laom trains, and the one way a torch file is written.

A model file (``lam.pt``, ``latent_policy.pt``, ``policy.pt``, ``idm.pt``) holds::

    {"format": "laom-model/1", "class": KIND, "kwargs": {...}, "state_dict": {...}, "meta": {...}}

``class`` is the model's kind (its class's ``kind``: ``lapo``, ``laom``, ``pixel-policy``,
``action-decoder``, ``acting-policy``, ``action-idm``), which :data:`MODEL_CLASSES` maps to
the class to rebuild, from ``kwargs`` (its constructor arguments) and the weights. No class
is pickled, so a file loads into whichever module defines its class today. ``meta`` is the
run's metadata (the method, the data signature, the task), which later stages check their
data against before using the model.

Files written before this format load too, read as the one model they hold:

* ``laom-lam/1`` (LAMs): the same layout under another format name;
* ``laom-policy/1`` (``policy.pt``, ``latent_policy.pt``): a pixel policy, with its action
  decoder an acting policy;
* the IDM baseline's ``idm.pt`` (``RUN/idm/idm.pt`` of its one-stage runs), only ``kwargs``
  and ``state_dict``: an ``action-idm`` without meta.

Training checkpoints are not models (they hold optimizer moments and the update count,
for a resume only), so they keep their own dict; they are written and read by the same
:func:`save_torch` and :func:`load_torch`. Every write goes through
:func:`laom.outputs.atomic_path`: a kill leaves the old file or the new one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from laom import methods
from laom.errors import LaomError
from laom.models.idm import ActionIDM
from laom.models.meta import LAMMeta, PolicyMeta
from laom.models.policy import POLICY_FILE, ActingPolicy, ActionDecoder, PixelPolicy
from laom.outputs import atomic_path
from laom.records import Record

MODEL_FORMAT = "laom-model/1"
LEGACY_LAM_FORMAT = "laom-lam/1"
LEGACY_POLICY_FORMAT = "laom-policy/1"
LAM_FILE = "lam.pt"
IDM_FILE = "idm.pt"  # the IDM baseline's inverse dynamics model (stage idm)


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


def _lam_classes() -> dict[str, type[nn.Module]]:
    """LAM class by kind, for every class the method registry names. One class serves
    several methods (laom and laom-labels), so a file's meta, not its kind, says which
    method made it."""
    out: dict[str, type[nn.Module]] = {}
    for spec in methods.lam_methods():
        cls = lam_class(spec.name)
        out.setdefault(cls.kind, cls)
    return out


LAM_CLASSES = _lam_classes()
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    **LAM_CLASSES, **{cls.kind: cls for cls in (PixelPolicy, ActionDecoder, ActingPolicy, ActionIDM)},
}  # fmt: skip
POLICY_CLASSES = {cls.kind: cls for cls in (PixelPolicy, ActingPolicy)}


# --------------------------------------------------------------------------- torch files


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` that a kill or a power cut cannot leave half done: written beside
    ``path``, flushed to disk, renamed onto it. Every process that calls it writes:
    under torchrun the stages let rank 0 alone call it."""
    with atomic_path(path, durable=True) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, what: str, hint: str = "") -> Any:
    """The object in torch file ``path``, on the CPU, or one LaomError line naming
    ``what`` it should have been (and ``hint``, what to do about it)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise LaomError(f"{what} {path}: unreadable ({type(exc).__name__}){'; ' + hint if hint else ''}") from None


# --------------------------------------------------------------------------- models


def save_model(path: str | Path, module: nn.Module, meta: Record | Mapping[str, Any]) -> None:
    """Write ``module`` (one of :data:`MODEL_CLASSES`) with ``meta`` (a record of
    :mod:`laom.models.meta`, stored as its dict) beside its weights, atomically
    (:func:`save_torch`).

    The class is recorded by its ``kind`` and rebuilt from its ``kwargs``: the
    constructor's arguments, or for a class whose constructor takes other objects
    (:class:`~laom.models.policy.ActingPolicy`), what its ``from_kwargs`` takes. The
    weights are stored on the CPU, so a file loads on a machine without the device it was
    trained on.
    """
    kind = getattr(type(module), "kind", None)
    if MODEL_CLASSES.get(kind) is not type(module):
        raise TypeError(f"{type(module).__name__} is not a model laom saves (kinds: {', '.join(MODEL_CLASSES)})")
    payload = {
        "format": MODEL_FORMAT,
        "class": kind,
        "kwargs": module.kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "meta": meta.to_json() if isinstance(meta, Record) else dict(meta),
    }
    save_torch(payload, path)


def _prefixed(prefix: str, part: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in part["state_dict"].items()}


def _upgraded(payload: Any) -> dict[str, Any] | None:
    """``payload`` as a ``laom-model/1`` dict (files of the earlier formats read as the
    model they hold), or None when it is no model file."""
    if not isinstance(payload, dict):
        return None
    fmt = payload.get("format")
    if fmt in (MODEL_FORMAT, LEGACY_LAM_FORMAT):
        return payload
    if fmt == LEGACY_POLICY_FORMAT:
        policy, decoder = payload["policy"], payload["decoder"]
        if decoder is None:
            return {"class": PixelPolicy.kind, "kwargs": policy["kwargs"], "state_dict": policy["state_dict"],
                    "meta": payload["meta"]}  # fmt: skip
        return {
            "class": ActingPolicy.kind, "kwargs": {"policy": policy["kwargs"], "decoder": decoder["kwargs"]},
            "state_dict": {**_prefixed("policy", policy), **_prefixed("decoder", decoder)}, "meta": payload["meta"],
        }  # fmt: skip
    if fmt is None and set(payload) == {"kwargs", "state_dict"}:  # the IDM baseline's idm.pt
        return {"class": ActionIDM.kind, "kwargs": payload["kwargs"], "state_dict": payload["state_dict"], "meta": {}}
    return None


def load_model(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    classes: dict[str, type[nn.Module]] | None = None,
    what: str = "model",
    hint: str = "",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved in ``path`` (by :func:`save_model`, or in an earlier
    format) on ``map_location``, in eval mode; returns (model, meta).

    ``classes`` (default: every kind) are the kinds the caller can use; any other is one
    LaomError line naming ``what`` was expected, as is a file that is no model or whose
    arguments or weights do not fit the class (a file from another laom version).
    """
    classes = MODEL_CLASSES if classes is None else classes
    payload = _upgraded(load_torch(path, what, hint))
    if payload is None:
        raise LaomError(f"{what} {path}: not a model file (expected format {MODEL_FORMAT})")
    kind = payload.get("class")
    if kind not in classes:
        held = f"holds a {kind} model" if kind in MODEL_CLASSES else f"unknown class {kind!r}"
        raise LaomError(f"{what} {path}: {held} (expected {', '.join(classes)})")
    cls = classes[kind]
    try:
        model = getattr(cls, "from_kwargs", cls)(**payload["kwargs"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LaomError(f"{what} {path}: does not fit this laom's {kind} model ({reason})") from None
    return model.to(map_location).eval(), payload["meta"]


def load_lam(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, LAMMeta]:
    """The latent action model of a LAM run folder or of its ``lam.pt`` (:func:`load_model`
    restricted to LAM classes); returns (model in eval mode, meta).

    ``meta`` (:class:`~laom.models.meta.LAMMeta`) holds the training method, img_hw,
    frame_stack, action_dim, state_dim and the dataset's domain/task, for checking that
    a later stage feeds it matching data.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LAM_FILE
    if not path.is_file():
        raise LaomError(f"latent action model {path}: no such file")
    model, meta = load_model(path, map_location, classes=LAM_CLASSES, what="latent action model")
    try:
        return model, LAMMeta.from_json(meta)
    except LaomError as exc:
        raise LaomError(f"latent action model {path}: meta: {exc}") from None


def load_policy_file(path: str | Path, map_location: str | torch.device = "cpu") -> ActingPolicy:
    """The policy in ``path`` (a latent policy, or an acting one with or without an action
    decoder) as an :class:`ActingPolicy` carrying its meta, in eval mode."""
    model, meta = load_model(
        path, map_location, classes=POLICY_CLASSES, what="--policy", hint="expected a run folder or its policy.pt"
    )
    try:
        typed = PolicyMeta.from_json(meta)
    except LaomError as exc:
        raise LaomError(f"--policy {path}: meta: {exc}") from None
    if isinstance(model, PixelPolicy):
        return ActingPolicy(model, None, typed).eval()
    model.meta = typed
    return model


def load_policy(run: str | Path, map_location: str | torch.device = "cpu") -> ActingPolicy:
    """The acting policy of a run directory (decoder, IDM or BC-baseline run) or of its
    ``policy.pt``, or a one-line error that says which command would make one."""
    run = Path(run)
    if run.is_file():
        return load_policy_file(run, map_location)
    if not run.is_dir():
        raise LaomError(f"--policy {run}: no such run directory")
    if (run / POLICY_FILE).is_file():
        return load_policy_file(run / POLICY_FILE, map_location)
    if (run / "latent_policy.pt").is_file():
        raise LaomError(
            f"--policy {run} is a latent BC run (it outputs latent actions); "
            f"train an action decoder on it: laom train decoder --policy {run} --labeled FILE --out RUN"
        )
    if (run / LAM_FILE).is_file():
        raise LaomError(
            f"--policy {run} is a latent action model run; train latent BC and a decoder on it first"
        )
    if (run / IDM_FILE).is_file():
        raise LaomError(
            f"--policy {run} is the IDM baseline's inverse dynamics model; train its policy on the labels it gives: "
            f"laom train idm-bc --idm {run} --data FILE --out RUN"
        )
    if not (run / "summary.json").is_file():
        raise LaomError(
            f"--policy {run}: no {POLICY_FILE}; the run is unfinished (re-run its command to resume)"
        )
    raise LaomError(f"--policy {run}: no {POLICY_FILE}")
