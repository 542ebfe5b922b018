"""Names and ids of a stage's run in the experiment trackers (wandb).

A wandb run is keyed by its id: with ``resume="allow"`` a second ``wandb.init`` with the
same id continues the run instead of opening a new one. The id is therefore derived
from the run folder's absolute path, which is exactly what makes ``laom train`` resume
(re-running the command with the same ``--out``), so an interrupted and resumed stage
is one wandb run with one unbroken curve. The display name says what the run is
(method, stage, folder), because wandb's default names (``glowing-river-12``) say
nothing and pipeline folders are named by hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml


def stage_of(cfg: Any) -> str:
    """The stage a config trains: lam, bc, decoder, idm, idm-bc or bc-baseline.

    Each stage's config class names its stage (``STAGE``), so this module, which every
    stage's metrics writer uses, imports none of the stage modules."""
    return getattr(cfg, "STAGE", "") or type(cfg).__name__.removesuffix("Config").lower() or "run"


def _upstream_config(run: str) -> dict[str, Any]:
    """The config.yaml of an upstream run folder ({} when it cannot be read)."""
    try:
        loaded = yaml.safe_load((Path(run) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def method_of(cfg: Any) -> str:
    """The method a stage belongs to. Latent BC and the decoder have no method field of
    their own: it is read from the LAM run they build on (decoder -> bc -> lam)."""
    stage = stage_of(cfg)
    if getattr(cfg, "method", ""):
        return str(cfg.method)
    if stage in ("idm", "idm-bc"):
        return "idm"
    if stage == "bc-baseline":
        return "bc"
    lam = getattr(cfg, "lam", "") or (
        _upstream_config(cfg.policy).get("lam", "") if getattr(cfg, "policy", "") else ""
    )
    method = _upstream_config(str(lam)).get("method", "") if lam else ""
    return str(method) or "latent"


def wandb_run_id(run_path: str | Path, stage: str) -> str:
    """A stable wandb id for the run folder: the stage and a hash of its absolute path.

    wandb ids may not contain ``/ \\ # ? % :``, so the path itself cannot be the id.
    """
    digest = hashlib.sha256(str(Path(run_path).resolve()).encode()).hexdigest()[:16]
    return f"{stage}-{digest}"


def wandb_init_kwargs(run_path: str | Path, cfg: Any) -> dict[str, Any]:
    """The identity arguments of ``wandb.init`` for a stage's run folder: a readable
    ``name`` (method/stage/folder), the stable ``id`` and ``resume="allow"``."""
    path = Path(run_path).resolve()
    stage = stage_of(cfg)
    return {
        "project": getattr(cfg, "wandb_project", "laom"),
        "name": f"{method_of(cfg)}/{stage}/{path.name}",
        "id": wandb_run_id(path, stage),
        "resume": "allow",
    }
