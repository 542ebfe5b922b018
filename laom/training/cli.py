"""``laom train ...``, ``laom pipeline`` and ``laom config show`` commands: every
argparse parser of the training layer, so the stage and pipeline modules below stay plain functions that the
sweep, the demo and the Python API call with the same arguments.

``laom train lam --method METHOD --data FILE [--labeled FILE]
[--eval-data FILE] --out RUN/ [--config PRESET|PATH] [--field value ...]``;
``laom train bc|decoder|idm|idm-bc|bc-baseline`` take their input runs or files the same way,
and ``laom pipeline --method M`` chains them (:mod:`laom.training.pipeline`).
``laom config show STAGE [--config ...] [--field value ...]`` prints the config ``laom
train`` would run a stage with (:func:`resolve_stage_config`, which both use).

Config precedence: the method's built-in CPU preset < ``--config`` YAML (a path, a
folder of ``<stage>.yaml`` files, or a preset shipped in the package: ``cpu``, ``demo``,
``paper`` = ``laom/configs/<name>/lam-<method>.yaml``) < ``--field
value`` overrides (any field of :class:`laom.training.lam.LAMConfig`) < the explicit
flags above. Re-running a command with the same --out resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from laom import methods
from laom.errors import LaomError
from laom.training.options import field_help, kinds, metavar, spec_of
from laom.training.pipeline import (
    FILE_FIELDS,
    METHODS,
    STAGE_NAMES,
    method_stages,
    stage_help,
    stage_trainer,
)

# 8 GB: at the paper preset's model shape some blocks pass 1 GB (LAPO at batch 128 paged in
# ~470,000 fresh pages, 5.7 s of system time, per 47 s step under 1e9; none under 8e9).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "8000000000", "MALLOC_TRIM_THRESHOLD_": "8000000000"}


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


def resolve_stage_config(stage: str, config: str | None, overrides: Sequence[str], *,
                         fixed: dict[str, Any] | None = None, against: str | None = None) -> Any:  # fmt: skip
    """The config ``laom train`` runs ``stage`` (a preset stem: lam-laom, bc, ...) with:
    defaults < ``--config`` < ``--field value`` < ``fixed`` (the command's own flags).
    ``laom config show`` prints this very object, so what it shows cannot drift from
    what trains. ``against`` ends the message when a YAML names another method (``laom
    train lam`` names its --method there)."""
    from laom.training.config import parse_config, resolve_preset
    from laom.training.pipeline import preset_stages

    classes = preset_stages()
    if stage not in classes:
        raise LaomError(f"unknown stage {stage!r} (stages: {', '.join(classes)})")
    preset = resolve_preset(config, stage)
    method = stage.removeprefix("lam-") if stage.startswith("lam-") else None
    against = against or f"the stage is {stage}"
    named = _yaml_field(preset, "method") if method else None
    if named is not None and named != method:
        raise LaomError(f"--config {config} sets method {named!r} but {against}")
    cfg = parse_config(classes[stage], preset, overrides, **(fixed or {}))
    if method is not None and cfg.method != method:
        raise LaomError(f"--config sets method {cfg.method!r} but {against}")
    return cfg


def _train_lam(args: argparse.Namespace, extra: list[str]) -> int:
    maybe_reexec_with_malloc_env()
    files = {"data": args.data, "labeled": args.labeled, "eval_data": args.eval_data, "out": args.out}
    cfg = resolve_stage_config(methods.get(args.method).preset("lam"), args.config, extra,
                               fixed=files, against=f"--method is {args.method!r}")  # fmt: skip
    summary = stage_trainer("lam")(cfg)
    keys = (
        "method",
        "updates",
        "action_probe_mse",
        "action_probe_baseline_mse",
        "state_probe_mse",
        "distractor_probe_r2",
        "samples_per_s",
    )
    written = summary.to_json()
    print(json.dumps({k: written.get(k) for k in keys}))
    print(f"run: {cfg.out} (summary.json, lam.pt, metrics.jsonl)")
    return 0


# --------------------------------------------------------------------------- config fields in --help


HelpGroups = list[tuple[str, str, dict[str, type]]]  # (title, flag prefix, variants)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's layout without line breaks inside hyphenated words (laom-labels,
    --eval-data), which would read as something else."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _ConfigHelp(argparse.Action):
    """``-h/--help`` that first adds every config field to the help, imported only now
    (the stage modules import torch, which ``laom --help`` should not wait for)."""

    def __init__(self, option_strings: list[str], dest: str, groups: Callable[[argparse.Namespace], HelpGroups],
                 skip: Sequence[str] = (), **kwargs: Any) -> None:  # fmt: skip
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="show this help, with every config field and its default, and exit")  # fmt: skip
        self.groups = groups
        self.skip = set(skip)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:  # fmt: skip
        parser.usage = parser.format_usage().split(":", 1)[1].strip().replace("%", "%%")
        taken = {s for a in parser._actions for s in a.option_strings}
        chosen = getattr(namespace, "method", None)  # `--method lapo --help`: lapo's defaults only
        for title, prefix, variants in self.groups(namespace):
            if chosen in variants:
                variants = {chosen: variants[chosen]}
            group = parser.add_argument_group(title)
            first = next(iter(variants.values()))
            for name, kind in kinds(first).items():
                flag = f"--{prefix}{name}"
                if name in self.skip or flag in taken:
                    continue
                group.add_argument(flag, metavar=metavar(kind, spec_of(first, name)).replace("%", "%%"),
                                   help=field_help(variants, name), default=argparse.SUPPRESS)  # fmt: skip
        parser.formatter_class = _HelpFormatter
        parser.print_help()
        parser.exit()


def add_config_help(parser: argparse.ArgumentParser, groups: Callable[[argparse.Namespace], HelpGroups],
                    skip: Sequence[str] = ()) -> None:  # fmt: skip
    """Give ``parser`` (made with ``add_help=False``) a help listing the config fields of
    ``groups(args parsed so far)``; fields named in ``skip`` (set by the command itself)
    are left out. A ``--method`` given before ``--help`` narrows per-method defaults."""
    parser.add_argument("-h", "--help", action=_ConfigHelp, groups=groups, skip=skip)


# --------------------------------------------------------------------------- stages and pipeline


def _pipeline_command(args: argparse.Namespace, extra: list[str]) -> int:
    maybe_reexec_with_malloc_env()
    from laom.training.pipeline import PipelineOptions, run_pipeline

    opts = PipelineOptions(
        method=args.method, data=args.data or "", labeled=args.labeled or "", out=args.out,
        eval_data=args.eval_data or "", preset=args.preset, episodes=args.episodes, eval_seed=args.eval_seed,
        workers=args.workers, num_envs=args.num_envs, max_steps=args.max_steps, split=args.split,
        normalizer=args.normalizer, progress=not args.no_progress, overrides=extra, until=args.until or "",
    )  # fmt: skip
    summary = run_pipeline(opts, log=lambda m: print(m, flush=True))
    shown = {k: summary.get(k) for k in ("method", "action_probe_mse", "return_mean", "return_std", "normalized_return")}
    print(json.dumps({k: v for k, v in shown.items() if v is not None}))
    print(f"summary: {summary['summary_file']}")
    return 0


def register_pipeline(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pipeline",
        add_help=False,
        help="run a method end to end (LAM, latent BC, decoder, evaluation), reusing finished stages",
        description=(
            "Chain the stages of a method under ROOT/<stage>-<hash>/ and evaluate the acting policy. "
            "A stage whose config and input files are unchanged is reused; an interrupted one resumes. "
            f"Stage settings: --STAGE.FIELD VALUE (stages: {', '.join(STAGE_NAMES)}), or "
            "--FIELD VALUE for every stage that has the field (e.g. --threads 2). "
            "`--method M --help` lists only M's stages."
        ),
    )
    p.add_argument("--method", required=True, choices=METHODS, help="the method whose stages run")
    p.add_argument("--data", default=None, help="large (unlabelled) HDF5 dataset")
    p.add_argument("--labeled", default=None, help="small action-labelled HDF5 subset")
    p.add_argument("--eval-data", dest="eval_data", default=None, help="held-out file: LAM probe test set, offline action MSE")
    p.add_argument("--out", required=True, help="root folder for the stage directories")
    p.add_argument("--preset", default="cpu", help="cpu (default), paper, or a folder of <stage>.yaml files")
    p.add_argument("--episodes", type=int, default=25, help="online evaluation episodes (0: skip)")
    p.add_argument("--eval-seed", dest="eval_seed", type=int, default=0, help="seed of the evaluation episodes")
    p.add_argument("--workers", type=int, default=0, help="evaluation environment processes")
    p.add_argument("--num-envs", dest="num_envs", type=int, default=4, help="environments stepped in lockstep")
    p.add_argument("--max-steps", dest="max_steps", type=int, default=None, help="cut evaluation episodes short")
    p.add_argument("--split", default=None, choices=("train", "eval"), help="background videos (default: the dataset's)")
    p.add_argument("--normalizer", default=None, help="reference return: a number, or an evaluated run (BC-full)")
    p.add_argument("--until", default=None, metavar="STAGE",
                   help="stop after this stage (e.g. lam: the LAM and its probes only; needs --episodes 0)")
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_pipeline_command, accepts_extra=True)
    add_config_help(p, lambda ns: [stage_help(s, f"{s}.") for s in method_stages(ns.method)], skip=FILE_FIELDS)


def _stage_command(stage: str) -> Callable[[argparse.Namespace, list[str]], int]:
    def command(args: argparse.Namespace, extra: list[str]) -> int:
        maybe_reexec_with_malloc_env()
        train = stage_trainer(stage)
        fixed = {k: getattr(args, k, None) for k in ("lam", "policy", "idm", "data", "labeled", "eval_data", "out")}
        cfg = resolve_stage_config(stage, args.config, extra, fixed={k: v for k, v in fixed.items() if v is not None})
        summary = train(cfg)
        keys = ("stage", "method", "updates", "final_loss", "relative_loss", "train_action_mse", "pseudo_label_mse", "offline", "samples_per_s")
        written = summary.to_json()
        print(json.dumps({k: written[k] for k in keys if written.get(k) is not None}))
        print(f"run: {cfg.out}")
        return 0

    return command


def register_stages(stages: argparse._SubParsersAction) -> None:
    """Add ``laom train bc | decoder | idm | idm-bc | bc-baseline`` to the ``train`` command."""
    common = "Any config field can be overridden with --field value; re-running with the same --out resumes."
    specs = {
        "bc": ("latent behaviour cloning: a pixel policy regresses a frozen LAM's latent actions",
               [("--lam", "LAM run directory"), ("--data", "large dataset the LAM labels")]),
        "decoder": ("action decoder: an MLP from a latent policy's output to true actions, on a labelled subset",
                    [("--policy", "latent BC run directory"), ("--labeled", "small labelled dataset"),
                     ("--eval-data", "optional held-out file for offline action MSE")]),
        "idm": ("IDM baseline's inverse dynamics model: supervised on --labeled (its policy: laom train idm-bc)",
                [("--labeled", "small labelled dataset")]),
        "idm-bc": ("IDM baseline's policy: an IDM run pseudo-labels --data, BC on those labels",
                   [("--idm", "IDM run directory (laom train idm)"), ("--data", "large dataset to pseudo-label"),
                    ("--eval-data", "optional held-out file for offline action MSE (the policy's and the IDM's)")]),
        "bc-baseline": ("BC baseline: a pixel policy regresses the true actions of --data (a labelled subset, or the full dataset for BC-full)",
                        [("--data", "labelled dataset"), ("--eval-data", "optional held-out file for offline action MSE")]),
    }  # fmt: skip
    for name, (help_text, flags) in specs.items():
        p = stages.add_parser(name, help=help_text.split(":")[0], description=f"{help_text}. {common}", add_help=False)
        for flag, text in flags:
            p.add_argument(flag, dest=flag[2:].replace("-", "_"), required=flag != "--eval-data", help=text)
        p.add_argument("--out", required=True, help="run directory (created; resumed if it exists)")
        p.add_argument("--config", default=None, help=f"YAML file, folder of <stage>.yaml files, or preset name (cpu, demo, paper = laom/configs/<name>/{name}.yaml)")
        p.set_defaults(func=_stage_command(name), accepts_extra=True)
        add_config_help(p, lambda ns, name=name: [stage_help(name)], skip=FILE_FIELDS)


# --------------------------------------------------------------------------- config show


def _config_show(args: argparse.Namespace, extra: list[str]) -> int:
    from laom.training.config import config_to_yaml

    sys.stdout.write(config_to_yaml(resolve_stage_config(args.stage, args.config, extra)))
    return 0


def register_config(subparsers: argparse._SubParsersAction) -> None:
    """Add ``laom config show STAGE``: a run's config.yaml before the run, to check what a
    preset and overrides add up to without training or reading any data."""
    lams = [f"lam-{m}" for m in METHODS if "lam" in method_stages(m)]
    stages = ", ".join([*lams, *STAGE_NAMES[1:]])
    config = subparsers.add_parser("config", help="show the config a stage would train with")
    actions = config.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    show = actions.add_parser(
        "show",
        help="print a stage's resolved config as YAML",
        description=(
            "Print the config `laom train` would run STAGE with, as YAML (what the run writes to "
            "its config.yaml): the built-in defaults < --config < --FIELD VALUE overrides. Paths "
            "(--data, --out, ...) are fields too. Nothing is read but the preset."
        ),
    )
    show.add_argument("stage", metavar="STAGE", help=f"one of {stages}")
    show.add_argument("--config", default=None, help="a preset (cpu, demo, paper), a YAML file, or a folder "
                      "of <stage>.yaml files; default: the built-in defaults (= the cpu preset)")  # fmt: skip
    show.set_defaults(func=_config_show, accepts_extra=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help=f"train a stage ({', '.join(STAGE_NAMES)})"
    )
    stages = train.add_subparsers(dest="stage", metavar="STAGE")
    stages.required = True

    lam = stages.add_parser(
        "lam",
        add_help=False,
        help=f"train a latent action model ({', '.join(m.label for m in methods.lam_methods())}) and probe it",
        description=(
            "Train a latent action model on unlabelled frames and report linear-probe MSE of its latent "
            "actions to the true actions. Any config field can be overridden with --field value "
            "(e.g. --batch_size 32 --encoder_scale 2); re-running with the same --out resumes."
        ),
    )
    lams = methods.lam_methods()
    lam.add_argument("--method", required=True, choices=[m.name for m in lams], help="which latent action model")
    lam.add_argument("--data", required=True, help="unlabelled HDF5 dataset (release layout)")
    labelled = ", ".join(m.name for m in lams if m.lam_reads_labels)
    lam.add_argument("--labeled", default=None, help=f"small labelled HDF5 dataset (required by {labelled})")
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
        help="YAML file, folder of <stage>.yaml files, or preset name (cpu, demo, paper); default: built-in cpu preset",
    )
    lam.set_defaults(func=_train_lam, accepts_extra=True)
    add_config_help(lam, lambda ns: [stage_help("lam")], skip=FILE_FIELDS)

    # Later stages and the end-to-end pipeline (laom/training/pipeline.py).
    register_stages(stages)
    register_pipeline(subparsers)
    register_config(subparsers)
