"""laom: latent action learning from video in the presence of distractors.

The public API is a handful of names, imported on first use (so that ``laom --help``
and ``import laom`` stay fast and do not load torch):

- :func:`run_pipeline` - a method end to end, as ``laom pipeline`` (returns its summary);
- :func:`load_lam` / :class:`LatentActionModel` - a trained latent action model whose
  ``encode(frames)`` turns uint8 dataset frames into latent actions;
- :func:`load_policy` - the acting policy of a run (``act(obs)`` on environment
  observations);
- :func:`make_env` - a Distracting Control Suite environment (``laom.envs.make``);
- :class:`LaomError` - raised for bad input, with a one-line message.

Everything else (``laom.training``, ``laom.data``, ...) is the implementation, usable
but not promised to stay put.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from laom.errors import LaomError

__version__ = "0.1.0"

# public name -> (module, attribute), imported when first touched
_LAZY = {
    "run_pipeline": ("laom.api", "run_pipeline"),
    "load_lam": ("laom.api", "load_lam"),
    "LatentActionModel": ("laom.api", "LatentActionModel"),
    "load_policy": ("laom.models.saving", "load_policy"),
    "make_env": ("laom.envs", "make"),
}

__all__ = [
    "LaomError",
    "LatentActionModel",
    "__version__",
    "load_lam",
    "load_policy",
    "make_env",
    "run_pipeline",
]

if TYPE_CHECKING:
    from laom.api import LatentActionModel, load_lam, run_pipeline
    from laom.envs import make as make_env
    from laom.models.saving import load_policy


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'laom' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
