"""Models: the ResNet family, LAOM's MLP heads, FSQ, augmentations and the latent action
models (LAPO, LAOM, each optionally with a labelled action head). The acting policies
are in :mod:`laom.models.policy`, the IDM baseline's inverse dynamics model in
:mod:`laom.models.idm`, the device and precision networks run in in
:mod:`laom.models.device`. Every model is saved and loaded by :mod:`laom.models.saving`
(one file format, the run's metadata beside the weights). Which class each method
trains is the method registry's (:mod:`laom.methods`, torch-free, below this layer)."""

from __future__ import annotations

from laom.models.laom import LAOM
from laom.models.lapo import LAPO
from laom.models.saving import (
    LAM_CLASSES,
    MODEL_CLASSES,
    lam_class,
    load_lam,
    load_model,
    model_class,
    save_model,
)

__all__ = ["LAM_CLASSES", "LAOM", "LAPO", "MODEL_CLASSES", "lam_class", "load_lam", "load_model", "model_class",
           "save_model"]  # fmt: skip
