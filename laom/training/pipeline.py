"""``laom pipeline``: one method end to end, reusing every stage that is already done.

Each method is a chain of stages::

    lapo, laom, laom-labels:  lam -> bc (latent BC) -> decoder -> evaluate
    idm:                      idm (IDM on --labeled, pseudo-labels, BC on --data) -> evaluate
    bc:                       bc-baseline on --labeled -> evaluate
    bc-full:                  bc-baseline on --data -> evaluate (the normaliser)

A stage's directory is ``ROOT/<stage>-<method>-<key>`` (``lam-laom-70ecee3c``: readable
without opening its config; ``idm-<key>`` where stage and method are one), where ``key``
hashes what determines its result: the resolved config (minus ``out`` and the fields that only change speed or
logging: device, threads, checkpoint/log intervals, progress, loggers), the identity of
every input file (absolute path, size, mtime), and the keys of the stages it builds on.
So a sweep over labelled budgets trains each LAM and latent BC once: for lapo and laom
only the decoder (and the evaluation) reads --labeled; for laom-labels the LAM itself
does, so the whole chain depends on it. A finished stage (summary.json present) is
reused; an interrupted one resumes from its checkpoint, because the same inputs give
the same directory. ``stage.json`` in each directory records what went into its key.
Directories named by earlier versions (``ROOT/<stage>-<key>``, the key alone) are still
found and reused where they are, never renamed: other runs' records point at them. A
finished stage keeps its artifacts and summary; its checkpoints are deleted.

Evaluation results are cached in the acting run directory per (environment, episodes,
seed); the pipeline summary (``ROOT/pipeline-<method>-<key>.json``) gathers the probe
MSE of the LAM, offline action MSE, and the online return (normalised if asked).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laom.errors import LaomError, require
from laom.outputs import check_output, code_version
from laom.training.options import add_config_help

METHODS = ("lapo", "laom", "laom-labels", "idm", "bc", "bc-full")
CACHE_VERSION = 1  # bump when a stage's outputs change meaning, to retire old directories
# Config fields that do not change a stage's result (same as RunDir's resumable fields).
NON_RESULT_FIELDS = {"out", "device", "threads", "checkpoint_every", "log_every", "progress", "tensorboard", "wandb", "wandb_project", "curve_every", "curve_episodes", "curve_workers"}


@dataclass
class Stage:
    """One stage of a chain: what to train, from which files and upstream stages."""

    name: str  # lam | bc | decoder | idm | bc-baseline
    preset: str  # YAML stem under configs/<preset>/
    config_cls: type
    train: Callable[[Any], dict[str, Any]]
    files: dict[str, str]  # config field -> input file path ("" = unused)
    upstream: dict[str, str] = field(default_factory=dict)  # config field -> upstream stage name
    extra: dict[str, Any] = field(default_factory=dict)  # other fixed config values
    method: str = ""  # the method whose chain this is (part of the folder's name)


@dataclass
class StageResult:
    name: str
    key: str
    path: Path
    cached: bool
    summary: dict[str, Any]
    seconds: float = 0.0  # wall time of this call (a sweep's ETA per stage kind)


def chain(method: str, data: str, labeled: str, eval_data: str) -> list[Stage]:
    """The stages of ``method`` with its input files (absolute paths)."""
    stages = _chain_stages(method, data, labeled, eval_data)
    for stage in stages:
        stage.method = method
    return stages


def _chain_stages(method: str, data: str, labeled: str, eval_data: str) -> list[Stage]:
    from laom.training.baselines import BCBaselineConfig, IDMConfig, train_bc_baseline, train_idm
    from laom.training.bc import BCConfig, train_bc
    from laom.training.decoder import DecoderConfig, train_decoder
    from laom.training.lam import CONFIGS, train_lam

    if method in ("lapo", "laom", "laom-labels"):
        lam_files = {"data": data, "eval_data": eval_data, "labeled": labeled if method == "laom-labels" else ""}
        return [
            Stage("lam", f"lam-{method}", CONFIGS[method], train_lam, lam_files, extra={"method": method}),
            Stage("bc", "bc", BCConfig, train_bc, {"data": data}, {"lam": "lam"}),
            Stage("decoder", "decoder", DecoderConfig, train_decoder, {"labeled": labeled, "eval_data": eval_data}, {"policy": "bc"}),
        ]  # fmt: skip
    if method == "idm":
        return [Stage("idm", "idm", IDMConfig, train_idm, {"labeled": labeled, "data": data, "eval_data": eval_data})]
    if method in ("bc", "bc-full"):
        source = labeled if method == "bc" else data
        return [Stage("bc-baseline", "bc-baseline", BCBaselineConfig, train_bc_baseline, {"data": source, "eval_data": eval_data})]
    raise LaomError(f"--method {method}: expected one of {', '.join(METHODS)}")


def preset_path(preset: str, stem: str) -> Path | None:
    """``cpu`` (built-in defaults where no file exists), ``paper``, or a folder of YAML files."""
    from laom.training.common import REPO_CONFIGS

    folder = REPO_CONFIGS / preset if "/" not in preset and not Path(preset).is_dir() else Path(preset)
    path = folder / f"{stem}.yaml"
    if path.is_file():
        return path
    if preset == "cpu":
        return None
    if not folder.is_dir():
        raise LaomError(f"--preset {preset}: no such preset (cpu, paper) or folder")
    raise LaomError(f"--preset {preset}: no {path}")


STAGE_NAMES = ("lam", "bc", "decoder", "idm", "bc-baseline")
# Fields the commands set themselves (from their own flags or upstream stages).
FILE_FIELDS = ("method", "data", "labeled", "eval_data", "out", "lam", "policy")


def stage_configs(stage: str) -> dict[str, type]:
    """A stage's config class by label: one per method for lam (their defaults differ)."""
    from laom.training.baselines import BCBaselineConfig, IDMConfig
    from laom.training.bc import BCConfig
    from laom.training.decoder import DecoderConfig
    from laom.training.lam import CONFIGS

    if stage == "lam":
        return dict(CONFIGS)
    return {stage: {"bc": BCConfig, "decoder": DecoderConfig, "idm": IDMConfig, "bc-baseline": BCBaselineConfig}[stage]}


def method_stages(method: str | None) -> tuple[str, ...]:
    """The stages ``method`` chains (every stage when no method is given)."""
    if method in ("lapo", "laom", "laom-labels"):
        return ("lam", "bc", "decoder")
    return {"idm": ("idm",), "bc": ("bc-baseline",), "bc-full": ("bc-baseline",)}.get(method or "", STAGE_NAMES)


def stage_help(stage: str, prefix: str = "") -> tuple[str, str, dict[str, type]]:
    """The ``--help`` group listing a stage's config fields (laom.training.options)."""
    flag = f"--{prefix}FIELD VALUE" + (", or --FIELD VALUE for every stage that has it" if prefix else "")
    title = f"{stage} config fields ({flag}; defaults: the cpu preset)"
    return title, prefix, stage_configs(stage)


def split_overrides(
    extra: list[str], stages: list[Stage], method: str, ignored: list[str] | None = None
) -> dict[str, list[str]]:
    """Route ``--stage.field value`` to that stage and ``--field value`` to every stage
    that has the field.

    Settings for a stage another method has (``--idm.idm_updates`` given to laom) are
    skipped and listed in ``ignored``, so one sweep command line serves every method.
    """
    names = {s.name: {f.name for f in dataclasses.fields(s.config_cls)} for s in stages}
    out: dict[str, list[str]] = {s.name: [] for s in stages}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise LaomError(f"unexpected argument {token!r} (overrides are --field value or --stage.field value)")
        name, eq, value = token[2:].partition("=")
        # A field's values run to the next --flag (a list may be typed as 16 32 32);
        # parse_config reads them, and names the flag if they do not fit its type.
        values = [value] if eq else []
        i += 1
        while i < len(extra) and not extra[i].startswith("--"):
            values.append(extra[i])
            i += 1
        stage, dot, fname = name.partition(".")
        if dot:
            stage = stage.replace("_", "-")
            if stage not in STAGE_NAMES:
                raise LaomError(f"--{name}: no stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
            if stage not in out:
                if ignored is not None:
                    ignored.append(f"--{name}")
                continue
            out[stage] += [f"--{fname}", *values]
            continue
        fname = name.replace("-", "_")
        targets = [s for s, fields in names.items() if fname in fields]
        if not targets:
            raise LaomError(f"unknown option --{name}: no stage of {method} ({', '.join(out)}) has it")
        for s in targets:
            out[s] += [f"--{fname}", *values]
    return out


def stage_manifest(stage: Stage, cfg: Any, upstream_keys: dict[str, str]) -> dict[str, Any]:
    """Everything a stage's result depends on, as plain JSON."""
    from laom.training.bc import file_identity
    from laom.training.common import config_to_dict

    config = {k: v for k, v in config_to_dict(cfg).items() if k not in NON_RESULT_FIELDS}
    for name, path in stage.files.items():
        config[name] = file_identity(path) if path else ""
    for name, upstream in stage.upstream.items():
        config[name] = {"stage": upstream, "key": upstream_keys[upstream]}
    return {"cache_version": CACHE_VERSION, "stage": stage.name, "config": config}


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


KEY_CHARS = 8  # of the key, in a stage folder's name (stage.json holds all of it)


def _holds(folder: Path, key: str) -> bool | None:
    """Whether ``folder``'s stage.json has the manifest of ``key`` (None: no stage.json)."""
    try:
        manifest = json.loads((folder / "stage.json").read_text())
    except (OSError, ValueError):
        return None
    return digest(manifest) == key


def stage_dir(root: Path, stage: Stage, key: str) -> Path:
    """The folder of a stage with ``key``: ``<stage>-<method>-<key[:8]>``, or where an
    earlier run put the same stage (an older laom's ``<stage>-<key>``, or the same
    bc-baseline trained for the other of bc / bc-full), so existing caches are reused
    and resumed in place."""
    label = stage.name if stage.method in ("", stage.name) else f"{stage.name}-{stage.method}"
    path = root / f"{label}-{key[:KEY_CHARS]}"
    if path.is_dir():
        if _holds(path, key) is False:
            raise LaomError(f"{path} holds another stage (its stage.json has another key); move it away")
        return path
    legacy = root / f"{stage.name}-{key}"  # laom 0.1.0: the key alone
    if legacy.is_dir():
        return legacy
    if root.is_dir():
        for other in sorted(root.glob(f"{stage.name}-*-{key[:KEY_CHARS]}")):
            if other.is_dir() and _holds(other, key):
                return other
    return path


@dataclass
class PlannedStage:
    stage: Stage
    cfg: Any
    manifest: dict[str, Any]
    key: str
    path: Path


def plan_chain(stages: list[Stage], root: Path, preset: str, overrides: dict[str, list[str]]) -> list[PlannedStage]:
    """Resolve every stage's config, key and directory; trains nothing.

    Keys depend only on configs, input files and upstream keys (never on upstream
    results), so the whole chain is known before the first stage runs.
    """
    from laom.training.common import check_stage_inputs, parse_config

    planned: dict[str, PlannedStage] = {}
    for stage in stages:
        fixed = {**stage.extra, **stage.files, "out": ""}
        cfg = parse_config(stage.config_cls, preset_path(preset, stage.preset), overrides[stage.name], **fixed)
        for name, upstream in stage.upstream.items():
            setattr(cfg, name, str(planned[upstream].path))
        manifest = stage_manifest(stage, cfg, {n: p.key for n, p in planned.items()})
        key = digest(manifest)
        path = stage_dir(root, stage, key)
        cfg.out = str(path)
        planned[stage.name] = PlannedStage(stage, cfg, manifest, key, path)
    # Every stage's ranges are checked (above) before what its files allow.
    for p in planned.values():
        if p.stage.name == "lam" and p.cfg.data:  # checks that need --data's headers (the demo plans without files)
            from laom.training.lam import validate

            validate(dataclasses.replace(p.cfg, out="-"))
        else:
            check_stage_inputs(p.cfg)
    return list(planned.values())


def run_chain(planned: list[PlannedStage], log: Callable[[str], None] = print) -> list[StageResult]:
    """Train (or reuse, or resume) every planned stage in order."""
    from laom.training.common import atomic_write_text

    results = []
    for p in planned:
        cached = (p.path / "summary.json").is_file()
        resumed = not cached and (p.path / "checkpoints" / "last.pt").is_file()
        log(f"[{p.stage.name}] {p.path}: " + ("done, reused" if cached else "resuming" if resumed else "training"))
        p.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p.path / "stage.json", json.dumps(p.manifest, indent=2) + "\n")
        start = time.perf_counter()
        summary = p.stage.train(p.cfg)
        results.append(StageResult(p.stage.name, p.key, p.path, cached, summary, time.perf_counter() - start))
    return results


@dataclass
class PipelineOptions:
    method: str
    data: str
    labeled: str
    out: str
    eval_data: str = ""
    preset: str = "cpu"
    episodes: int = 25
    eval_seed: int = 0
    workers: int = 0
    num_envs: int = 4
    max_steps: int | None = None
    split: str | None = None
    normalizer: str | None = None
    progress: bool = True
    overrides: list[str] = field(default_factory=list)


def check_inputs(method: str, data: str, labeled: str, eval_data: str, episodes: int) -> None:
    """LaomError unless the method's files hold one task with the same frame, action and
    state sizes, and (when it will be evaluated) a task the environments have."""
    from laom.data.compat import check_compatible

    files = {"--data": data, "--labeled": labeled, "--eval-data": eval_data}
    if method == "bc":  # trains on --labeled alone
        files = {"--labeled": labeled, "--eval-data": eval_data}
    facts = check_compatible(files)
    if episodes > 0:
        from laom.envs.tasks import parse_task

        flag, first = next(iter(facts.items()))
        try:
            parse_task(first.task)
        except LaomError as exc:
            raise LaomError(f"{flag} {first.path}: cannot evaluate online: {exc} (use --episodes 0)") from None


def run_pipeline(opts: PipelineOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``opts.method`` end to end; returns (and writes) the pipeline summary."""
    from laom.evaluation.cli import evaluate_run, resolve_normalizer
    from laom.training.common import atomic_write_text

    require(opts.method in METHODS, f"--method {opts.method}: expected one of {', '.join(METHODS)}")
    require(bool(opts.out), "--out is required")
    check_output(opts.out, "--out", kind="dir", create_parents=True)
    needs_data = opts.method != "bc"
    needs_labeled = opts.method != "bc-full"
    require(bool(opts.data) or not needs_data, f"--method {opts.method} needs --data FILE")
    require(bool(opts.labeled) or not needs_labeled, f"--method {opts.method} needs --labeled FILE")
    require(opts.episodes >= 0, f"--episodes {opts.episodes}: expected >= 0")
    require(opts.workers >= 0, f"--workers {opts.workers}: expected >= 0 (0 = in this process)")
    require(opts.num_envs >= 1, f"--num-envs {opts.num_envs}: expected >= 1")
    require(opts.max_steps is None or opts.max_steps >= 1, f"--max-steps {opts.max_steps}: expected >= 1")
    require(opts.eval_seed >= 0, f"--eval-seed {opts.eval_seed}: expected >= 0")

    def absolute(p: str) -> str:
        return str(Path(p).resolve()) if p else ""

    data, labeled, eval_data = absolute(opts.data), absolute(opts.labeled), absolute(opts.eval_data)
    stages = chain(opts.method, data if needs_data else "", labeled if needs_labeled else "", eval_data)
    ignored: list[str] = []
    overrides = split_overrides(list(opts.overrides), stages, opts.method, ignored)
    if ignored:
        log(f"note: {opts.method} has no stage for {', '.join(ignored)}; ignored")
    if not opts.progress:
        for name in overrides:
            overrides[name] += ["--progress", "false"]
    normalizer = resolve_normalizer(opts.normalizer) if opts.normalizer else None
    root = Path(opts.out).resolve()  # stage dirs (and their configs) name one place however --out was written
    # The whole plan is checked before the first stage: files read only by a late stage
    # (the decoder's --labeled) must not fail hours in.
    check_inputs(opts.method, data if needs_data else "", labeled if needs_labeled else "", eval_data, opts.episodes)
    planned = plan_chain(stages, root, opts.preset, overrides)
    root.mkdir(parents=True, exist_ok=True)
    results = run_chain(planned, log)
    acting = results[-1]

    summary: dict[str, Any] = {
        "method": opts.method,
        "stages": {r.name: {"dir": str(r.path), "key": r.key, "reused": r.cached} for r in results},
        "stage_seconds": {r.name: round(r.seconds, 3) for r in results},  # a sweep's ETA per stage kind
        "data": data, "labeled": labeled, "eval_data": eval_data, "preset": opts.preset,
    }  # fmt: skip
    lam = next((r for r in results if r.name == "lam"), None)
    if lam is not None:
        for k in ("action_probe_mse", "action_probe_baseline_mse", "state_probe_mse", "action_probe_r2", "distractor_probe_r2"):
            summary[k] = lam.summary.get(k)
    if "offline" in acting.summary:
        summary["offline"] = acting.summary["offline"]
    if opts.episodes > 0:
        result = evaluate_run(
            acting.path, opts.episodes, seed=opts.eval_seed, workers=opts.workers, num_envs=opts.num_envs,
            max_steps=opts.max_steps, split=opts.split, progress=opts.progress, reuse=True, log=log,
        )  # fmt: skip
        summary["return_mean"], summary["return_std"] = result["mean"], result["std"]
        summary.update({"episodes": result["episodes"], "env": result["env"], "eval_file": result["file"]})
        if normalizer is not None:
            summary["normalizer"] = normalizer
            summary["normalized_return"] = result["mean"] / normalizer
            summary["normalized_std"] = result["std"] / abs(normalizer)
    evaluation = {"episodes": opts.episodes, "seed": opts.eval_seed, "max_steps": opts.max_steps, "split": opts.split}
    key = digest({"acting": acting.key, **evaluation, "normalizer": normalizer})
    out_file = root / f"pipeline-{opts.method}-{key}.json"
    summary["summary_file"] = str(out_file)
    summary.update(code_version())
    atomic_write_text(out_file, json.dumps(summary, indent=2) + "\n")
    return summary


# --------------------------------------------------------------------------- CLI


def _pipeline_command(args: argparse.Namespace, extra: list[str]) -> int:
    from laom.training.cli import maybe_reexec_with_malloc_env

    maybe_reexec_with_malloc_env()
    opts = PipelineOptions(
        method=args.method, data=args.data or "", labeled=args.labeled or "", out=args.out,
        eval_data=args.eval_data or "", preset=args.preset, episodes=args.episodes, eval_seed=args.eval_seed,
        workers=args.workers, num_envs=args.num_envs, max_steps=args.max_steps, split=args.split,
        normalizer=args.normalizer, progress=not args.no_progress, overrides=extra,
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
            "Stage settings: --STAGE.FIELD VALUE (stages: lam, bc, decoder, idm, bc-baseline), or "
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
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_pipeline_command, accepts_extra=True)
    add_config_help(p, lambda ns: [stage_help(s, f"{s}.") for s in method_stages(ns.method)], skip=FILE_FIELDS)


def _stage_command(stage: str) -> Callable[[argparse.Namespace, list[str]], int]:
    def command(args: argparse.Namespace, extra: list[str]) -> int:
        from laom.training.cli import maybe_reexec_with_malloc_env
        from laom.training.common import parse_config, resolve_preset

        maybe_reexec_with_malloc_env()
        if stage == "bc":
            from laom.training.bc import BCConfig as cls
            from laom.training.bc import train_bc as train
        elif stage == "decoder":
            from laom.training.decoder import DecoderConfig as cls
            from laom.training.decoder import train_decoder as train
        elif stage == "idm":
            from laom.training.baselines import IDMConfig as cls
            from laom.training.baselines import train_idm as train
        else:
            from laom.training.baselines import BCBaselineConfig as cls
            from laom.training.baselines import train_bc_baseline as train
        fixed = {k: getattr(args, k, None) for k in ("lam", "policy", "data", "labeled", "eval_data", "out")}
        cfg = parse_config(cls, resolve_preset(args.config, stage), extra, **{k: v for k, v in fixed.items() if v is not None})
        summary = train(cfg)
        keys = ("stage", "method", "updates", "final_loss", "relative_loss", "train_action_mse", "pseudo_label_mse", "offline", "samples_per_s")
        print(json.dumps({k: summary[k] for k in keys if summary.get(k) is not None}))
        print(f"run: {cfg.out}")
        return 0

    return command


def register_stages(stages: argparse._SubParsersAction) -> None:
    """Add ``laom train bc | decoder | idm | bc-baseline`` to the ``train`` command."""
    common = "Any config field can be overridden with --field value; re-running with the same --out resumes."
    specs = {
        "bc": ("latent behaviour cloning: a pixel policy regresses a frozen LAM's latent actions",
               [("--lam", "LAM run directory"), ("--data", "large dataset the LAM labels")]),
        "decoder": ("action decoder: an MLP from a latent policy's output to true actions, on a labelled subset",
                    [("--policy", "latent BC run directory"), ("--labeled", "small labelled dataset"),
                     ("--eval-data", "optional held-out file for offline action MSE")]),
        "idm": ("IDM baseline: supervised IDM on --labeled, pseudo-labels --data, BC on them",
                [("--labeled", "small labelled dataset"), ("--data", "large dataset to pseudo-label"),
                 ("--eval-data", "optional held-out file for offline action MSE")]),
        "bc-baseline": ("BC baseline: a pixel policy regresses the true actions of --data (a labelled subset, or the full dataset for BC-full)",
                        [("--data", "labelled dataset"), ("--eval-data", "optional held-out file for offline action MSE")]),
    }  # fmt: skip
    for name, (help_text, flags) in specs.items():
        p = stages.add_parser(name, help=help_text.split(":")[0], description=f"{help_text}. {common}", add_help=False)
        for flag, text in flags:
            p.add_argument(flag, dest=flag[2:].replace("-", "_"), required=flag != "--eval-data", help=text)
        p.add_argument("--out", required=True, help="run directory (created; resumed if it exists)")
        p.add_argument("--config", default=None, help=f"YAML file or preset name (cpu, paper = configs/<name>/{name}.yaml)")
        p.set_defaults(func=_stage_command(name), accepts_extra=True)
        add_config_help(p, lambda ns, name=name: [stage_help(name)], skip=FILE_FIELDS)
