"""The configuration every training stage starts from.

A stage is a dataclass config (a subclass of :class:`TrainConfig`, or of
:class:`RunConfig` for a stage without epochs; its fields declared
with :func:`laom.training.options.opt`) plus a loop. Here a config is read
(:func:`parse_config`: defaults < YAML preset < ``--field value``), its preset found
(:func:`resolve_preset`), its input files checked before anything is written
(:func:`check_stage_inputs`), and written out (:func:`config_to_dict`,
:func:`config_to_yaml`) for ``config.yaml``, summaries and stage keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Optional, TypeVar

import yaml

from laom.errors import LaomError
from laom.models.device import resolve_device
from laom.training.options import check_fields, normalize_overrides, opt

C = TypeVar("C")


@dataclass
class RunConfig:
    """Fields every training stage has: seeding, device, optimiser regularisation and
    bookkeeping. A stage whose length is a fixed number of updates of its own (the IDM
    baseline's IDM: ``idm_updates``) builds on this alone, so it has no epochs or batch
    size that a setting could change without changing what it trains."""

    # The stage a config class trains, as trackers name it (laom.training.tracking). A
    # class attribute, not a field: no flag, no line in config.yaml, no part of a key.
    STAGE = ""
    # Fields this stage once had that now belong to another (``laom train idm --epochs``:
    # the IDM baseline's policy is stage idm-bc): field -> that stage, so the old flag or
    # YAML key fails naming where it went. A class attribute too.
    MOVED: ClassVar[dict[str, str]] = {}

    seed: int = opt(0, "random seed of initialisation, batches and augmentations", ge=0)
    device: str = opt("auto", "auto (CUDA when available), cpu, cuda or cuda:N",
                      pattern=r"auto|cpu|cuda(:\d+)?", expected="auto, cpu, cuda or cuda:N")  # fmt: skip
    precision: str = opt("auto", "auto: bf16 on CUDA and on CPUs with bf16 support, else fp32",
                         choices=("auto", "fp32", "bf16"))  # fmt: skip
    threads: int = opt(0, "torch CPU threads; 0 = one per core", ge=0)
    weight_decay: float = opt(0.0, "AdamW weight decay (not on biases and norms)", ge=0)
    grad_clip: Optional[float] = opt(None, "max global grad norm; null = no clipping", gt=0)
    compile: bool = opt(False, "torch.compile the training forward (worth it on GPUs; slow start)")
    checkpoint_every: int = opt(500, "updates between checkpoints (and one at the end)", ge=1)
    log_every: int = opt(50, "updates between metrics.jsonl rows", ge=1)
    progress: bool = opt(True, "show training progress")
    tensorboard: bool = opt(False, "also log metrics to RUN/tensorboard (pip install laom[tensorboard])")
    wandb: bool = opt(False, "also log metrics to Weights & Biases (pip install laom[wandb])")
    wandb_project: str = opt("laom", "wandb project name")


@dataclass
class TrainConfig(RunConfig):
    """A stage that trains for epochs over its data (or ``total_updates``) at a batch size:
    every stage but the IDM baseline's IDM. Stages subclass this and add their own fields."""

    batch_size: int = opt(512, "samples per update", ge=1)
    epochs: float = opt(10.0, "passes over the training data (fractions allowed)", gt=0)
    total_updates: int = opt(0, "updates to train; > 0 overrides epochs", ge=0)
    # The CPU presets' epochs are passes over a 100k-transition reference file; on a file
    # 5x larger the same preset would train 5x longer. Capping what an epoch counts keeps
    # a preset's schedule (updates, warmup, EMA lag) the same on any larger file, and
    # leaves smaller files (a labelled subset, the demo's data) as they are.
    epoch_transitions: int = opt(0, "count an epoch as at most this many transitions, so a preset's "
                                 "schedule stays the same on a larger file; 0 = the whole data", ge=0)  # fmt: skip
    learning_rate: float = opt(1e-4, "AdamW peak learning rate", gt=0)
    warmup_epochs: float = opt(0.0, "linear warmup length, in epochs (fractions allowed)", ge=0)


def resolve_preset(config: str | None, stage: str) -> Path | None:
    """``--config`` value -> the YAML file of ``stage``: a YAML file as given, a folder of
    ``<stage>.yaml`` files (as ``laom pipeline --preset`` takes), or the name of a preset
    shipped with laom (cpu, demo, paper; read from the installed package, so it works
    outside a checkout)."""
    from laom.training.presets import preset_file, preset_names

    if not config:
        return None
    path = Path(config)
    if path.is_file():
        return path
    if "/" not in config and not config.endswith((".yaml", ".yml")):
        preset = preset_file(config, stage)
        if preset is not None:
            return preset
        if not path.is_dir():
            raise LaomError(f"--config {config}: no preset {config}/{stage}.yaml "
                            f"(presets: {', '.join(preset_names())}; or a YAML file, or a folder of them)")  # fmt: skip
    if path.is_dir():
        if (path / f"{stage}.yaml").is_file():
            return path / f"{stage}.yaml"
        raise LaomError(f"--config {config}: no {path / f'{stage}.yaml'}")
    raise LaomError(f"--config {config}: no such file")


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def parse_config(
    cls: type[C], config_path: str | Path | None, overrides: Sequence[str], **fixed: Any
) -> C:
    """Defaults of ``cls`` < YAML at ``config_path`` < ``--field value`` overrides < ``fixed``.

    Unknown fields (in the YAML or on the command line) are a one-line LaomError naming
    the field, not an argparse usage dump.
    """
    import draccus

    names = _field_names(cls)
    if config_path is not None:
        try:
            loaded = yaml.safe_load(Path(config_path).read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:  # yaml's message spans lines
            raise LaomError(f"config {config_path}: not a YAML file ({' '.join(str(exc).split())})") from None
        if not isinstance(loaded, dict):
            raise LaomError(f"config {config_path}: expected a mapping of field: value")
        unknown = sorted(set(loaded) - names)
        moved = sorted({cls.MOVED[k] for k in unknown if k in getattr(cls, "MOVED", {})})
        if moved:
            fields_moved = [k for k in unknown if k in cls.MOVED]
            raise LaomError(f"config {config_path}: {', '.join(fields_moved)}: settings of stage "
                            f"{', '.join(moved)} now, in its own {', '.join(m + '.yaml' for m in moved)}")  # fmt: skip
        if unknown:
            raise LaomError(f"config {config_path}: unknown field(s) {', '.join(unknown)}")
    args = normalize_overrides(cls, overrides)  # lists as typed (16,32,32), bad values named
    stderr = io.StringIO()  # argparse's usage dump becomes part of one error line
    try:
        with contextlib.redirect_stderr(stderr):
            cfg = draccus.parse(
                cls, config_path=str(config_path) if config_path else None, args=args
            )
    except SystemExit:
        reason = stderr.getvalue().strip().splitlines()[-1:] or ["invalid value"]
        raise LaomError(
            f"{reason[0].split('error: ', 1)[-1]} (in: {' '.join(overrides)})"
        ) from None
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, LaomError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # a config's own refusal (e.g. a method with another's defaults)
            raise LaomError(str(cause)) from None
        raise LaomError(
            f"invalid configuration: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    for key, value in fixed.items():
        if value is not None:
            setattr(cfg, key, value)
    check_fields(cfg)  # every range, before any stage reads data or writes a file
    return cfg


STAGE_FILES = (("data", "--data"), ("labeled", "--labeled"), ("eval_data", "--eval-data"))


def check_stage_inputs(cfg: Any) -> dict[str, Any]:
    """What every stage can check before it writes anything, beyond each field's range:
    its dataset files (each in the release's layout, all of one task with the same frame,
    action and state sizes; headers only, so big files cost nothing) and --device. A run
    that failed on these later left a run folder behind. Returns each file's
    :class:`~laom.data.compat.DataFacts` by flag, for a stage's own checks."""
    from laom.data.compat import check_compatible

    facts = check_compatible({flag: str(getattr(cfg, name, "") or "") for name, flag in STAGE_FILES})
    stack = getattr(cfg, "frame_stack", None)
    if facts and isinstance(stack, int):  # a longer stack than any trajectory is padding, not history
        flag, first = next(iter(facts.items()))
        if stack > first.longest:
            raise LaomError(f"--frame_stack {stack}: expected at most {first.longest}, the longest trajectory of {flag} {first.path}")
    if isinstance(getattr(cfg, "device", None), str):
        resolve_device(cfg.device)
    return facts


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain (YAML/JSON-safe) dict of a config dataclass."""
    out = {}
    for key, value in dataclasses.asdict(cfg).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def config_to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
