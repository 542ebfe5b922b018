"""``laom train ...`` commands.

``laom train lam --method lapo|laom|laom-labels --data FILE [--labeled FILE]
[--eval-data FILE] --out RUN/ [--config PRESET|PATH] [--field value ...]``

Config precedence: the method's built-in CPU preset < ``--config`` YAML (a path, or a
preset name: ``paper``/``cpu`` = ``configs/<name>/lam-<method>.yaml``) < ``--field
value`` overrides (any field of :class:`laom.training.lam.LAMConfig`) < the explicit
flags above. Re-running a command with the same --out resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from laom.errors import LaomError

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}


def maybe_reexec_with_malloc_env() -> None:
    """Restart the ``laom`` process once with glibc told to keep freed memory.

    glibc reads these variables only at process start (mallopt at runtime is capped at
    32 MiB), and without them every training step re-faults its large activations
    (measured in benchmarks/lam_speed.py). Only the real ``laom`` entry point is
    restarted, never an in-process caller such as a test; ``LAOM_NO_REEXEC=1`` opts out.
    """
    if all(k in os.environ for k in MALLOC_ENV) or os.environ.get("LAOM_NO_REEXEC"):
        return
    entry = Path(sys.argv[0]).name if sys.argv else ""
    is_laom_entry = entry == "laom" or (
        entry == "__main__.py" and Path(sys.argv[0]).parent.name == "laom"
    )
    if not is_laom_entry or not sys.platform.startswith("linux") or not hasattr(sys, "orig_argv"):
        return
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in MALLOC_ENV.items()}}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def _yaml_field(path: Path | None, name: str) -> Any:
    """One field of a YAML config (None when absent or unreadable: parse_config reports that)."""
    if path is None:
        return None
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return loaded.get(name) if isinstance(loaded, dict) else None


def _train_lam(args: argparse.Namespace, extra: list[str]) -> int:
    maybe_reexec_with_malloc_env()
    from laom.training.common import parse_config, resolve_preset
    from laom.training.lam import CONFIGS, train_lam

    preset = resolve_preset(args.config, f"lam-{args.method}")
    method = _yaml_field(preset, "method")
    if method is not None and method != args.method:
        raise LaomError(f"--config {args.config} sets method {method!r} but --method is {args.method!r}")
    cfg = parse_config(
        CONFIGS[args.method],
        preset,
        extra,
        data=args.data,
        labeled=args.labeled,
        eval_data=args.eval_data,
        out=args.out,
    )
    if cfg.method != args.method:
        raise LaomError(f"--config sets method {cfg.method!r} but --method is {args.method!r}")
    summary = train_lam(cfg)
    keys = (
        "method",
        "updates",
        "action_probe_mse",
        "action_probe_baseline_mse",
        "state_probe_mse",
        "distractor_probe_r2",
        "samples_per_s",
    )
    print(json.dumps({k: summary.get(k) for k in keys}))
    print(f"run: {cfg.out} (summary.json, lam.pt, metrics.jsonl)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train a stage (lam, bc, decoder, idm, bc-baseline)"
    )
    stages = train.add_subparsers(dest="stage", metavar="STAGE")
    stages.required = True

    lam = stages.add_parser(
        "lam",
        add_help=False,
        help="train a latent action model (LAPO, LAOM, LAOM+supervision) and probe it",
        description=(
            "Train a latent action model on unlabelled frames and report linear-probe MSE of its latent "
            "actions to the true actions. Any config field can be overridden with --field value "
            "(e.g. --batch_size 32 --encoder_scale 2); re-running with the same --out resumes."
        ),
    )
    lam.add_argument("--method", required=True, choices=("lapo", "laom", "laom-labels"), help="which latent action model")
    lam.add_argument("--data", required=True, help="unlabelled HDF5 dataset (release layout)")
    lam.add_argument(
        "--labeled", default=None, help="small labelled HDF5 dataset (required by laom-labels)"
    )
    lam.add_argument(
        "--eval-data",
        dest="eval_data",
        default=None,
        help="probe test set (default: held-out trajectories)",
    )
    lam.add_argument("--out", required=True, help="run directory (created; resumed if it exists)")
    lam.add_argument(
        "--config",
        default=None,
        help="YAML file or preset name (cpu, paper); default: built-in cpu preset",
    )
    lam.set_defaults(func=_train_lam, accepts_extra=True)
    from laom.training.options import add_config_help
    from laom.training.pipeline import FILE_FIELDS, stage_help

    add_config_help(lam, lambda ns: [stage_help("lam")], skip=FILE_FIELDS)

    # Later stages and the end-to-end pipeline (laom/training/pipeline.py).
    from laom.training.pipeline import register_pipeline, register_stages

    register_stages(stages)
    register_pipeline(subparsers)
