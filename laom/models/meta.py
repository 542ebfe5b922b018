"""The metadata saved beside a model's weights (``meta`` of a model file,
:func:`laom.models.saving.save_model`), as records (:mod:`laom.records`).

A later stage checks its data against what the model was trained on (task, frame size,
frame stack, action size) and evaluation rebuilds the environment from it, so a key read
wrong would train or score on the wrong thing without an error; named fields make that
a typo a linter sees. In the file it stays a plain dict, key for key what earlier laoms
wrote: files of every earlier version load, a key they lack reads as None (and is not
written back when the meta is copied into the next stage's file), one this laom does
not name is kept in ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass

from laom.records import Record, json_field


@dataclass
class LAMMeta(Record):
    """``lam.pt``'s: the training method and the data signature later stages check."""

    method: str | None = None
    img_hw: int | None = None
    frame_stack: int | None = None
    action_dim: int | None = None
    state_dim: int | None = None
    domain_name: str | None = None
    task_name: str | None = None
    latent_dim: int | None = None
    updates: int | None = None


@dataclass
class PolicyMeta(Record):
    """A policy's (``latent_policy.pt``, ``policy.pt``, the IDM baseline's ``idm.pt``):
    the data signature, and the environment settings of the dataset it was trained on,
    which evaluation rebuilds (``laom.evaluation.policy.env_kwargs``)."""

    img_hw: int | None = None
    frame_stack: int | None = None
    action_dim: int | None = None
    state_dim: int | None = json_field(
        omit_none=True
    )  # policies of laom before the one save format
    domain_name: str | None = None
    task_name: str | None = None
    difficulty: str | None = None
    dynamic: bool | None = None
    split: str | None = None
    backgrounds: str | None = None
    method: str | None = None
    latent_dim: int | None = json_field(omit_none=True)  # a latent policy's (and its decoder's)
    outputs: str | None = None  # "latent" (latent BC) or "action" (an acting policy)
    data: str | None = None  # the dataset it was trained on (absolute path)
    labeled: str | None = json_field(omit_none=True)  # the decoder's labelled file
