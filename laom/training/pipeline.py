"""``laom pipeline``: one method end to end, reusing every stage that is already done.

Each method is a chain of stages, its entry in the method registry (:mod:`laom.methods`)::

    lapo, laom, laom-labels, lapo-labels:  lam -> bc (latent BC) -> decoder -> evaluate
    idm:          idm (IDM on --labeled) -> idm-bc (its pseudo-labels of --data, BC on them) -> evaluate
    bc:           bc-baseline on --labeled -> evaluate
    bc-full:      bc-baseline on --data -> evaluate (the normaliser)

The registry names each stage; :func:`stage_trainer` and :func:`stage_configs` find its
training function and config class, for the pipeline and ``laom train`` alike.

A stage's directory is ``ROOT/<stage>-<method>-<key>`` (``lam-laom-70ecee3c``: readable
without opening its config; ``idm-<key>`` where stage and method are one; the IDM's policy
is ``idm-bc-idm-<key>``), where ``key``
hashes what determines its result: the resolved config (minus ``out`` and the fields that only change speed or
logging: device, threads, torch.compile, checkpoint/log intervals, progress, loggers), the identity of
every input file (absolute path, size, mtime), and the keys of the stages it builds on.
So a sweep over labelled budgets trains each LAM and latent BC once: for lapo and laom
only the decoder (and the evaluation) reads --labeled; for laom-labels and lapo-labels
the LAM itself does, so the whole chain depends on it. A finished stage (summary.json
present) is reused; an interrupted one resumes from its checkpoint, because the same
inputs give the same directory. ``stage.json`` in each directory records what went into its key.
Directories named by earlier versions (``ROOT/<stage>-<key>``, the key alone) are still
found and reused where they are, never renamed: other runs' records point at them. A
finished stage keeps its artifacts and summary; its checkpoints are deleted. The IDM
baseline's one-stage folders of laom up to bda8351 (``idm-<key>`` holding RUN/idm/ and
RUN/bc/) have keys no chain computes now: the two stages train beside them, and they
are left as they are (their policies still evaluate, their runs.jsonl lines report).

Evaluation results are cached in the acting run directory per (environment, episodes,
seed); the pipeline summary (``ROOT/pipeline-<method>-<key>.json``) gathers the probe
MSE of the LAM, offline action MSE, and the online return (normalised if asked).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laom import methods
from laom.errors import LaomError, require
from laom.outputs import atomic_write_text, check_output, code_version
from laom.training.options import ADDED_FIELDS, NON_RESULT_FIELDS, default_of, override_items
from laom.training.summaries import LAMSummary, PolicySummary, StageRef, StageSummary

METHODS = methods.names()
CACHE_VERSION = 1  # bump when a stage's outputs change meaning, to retire old directories
# Non-result fields (options.NON_RESULT_FIELDS) that keys made before they were known as
# such still hold: the manifest keeps them at their default, so those keys stay valid and
# any other value finds the same stage instead of training it again.
KEYED_AT_DEFAULT = frozenset({"compile"})


@dataclass
class Stage:
    """One stage of a chain: what to train, from which files and upstream stages."""

    name: str  # lam | bc | decoder | idm | idm-bc | bc-baseline
    preset: str  # YAML stem of the stage in a preset (laom/configs/<preset>/<stem>.yaml)
    config_cls: type
    train: Callable[[Any], StageSummary]
    files: dict[str, str]  # config field -> input file path ("" = unused)
    upstream: dict[str, str] = field(default_factory=dict)  # config field -> upstream stage name
    extra: dict[str, Any] = field(default_factory=dict)  # other fixed config values
    method: str = ""  # the method whose chain this is (part of the folder's name)
    former: str = ""  # the stage it was split from, whose --former.field settings reach it too


@dataclass
class StageResult:
    name: str
    key: str
    path: Path
    cached: bool
    summary: StageSummary
    seconds: float = 0.0  # wall time of this call (a sweep's ETA per stage kind)


def chain(method: str, data: str, labeled: str, eval_data: str) -> list[Stage]:
    """The stages of ``method`` with its input files (absolute paths)."""
    stages = _chain_stages(method, data, labeled, eval_data)
    for stage in stages:
        stage.method = method
    return stages


def _chain_stages(method: str, data: str, labeled: str, eval_data: str) -> list[Stage]:
    """The registry's stages of ``method``, each with its config class, its training
    function and its file fields set from the command's files."""
    spec = methods.get(method)
    given = {"data": data, "labeled": labeled, "eval_data": eval_data, "": ""}
    stages = []
    for s in spec.stages:
        (config_cls,) = stage_configs(s.name, method).values()
        extra = {"method": method} if s.name == "lam" else {}
        files = {name: given[source] for name, source in s.files.items()}
        trainer = stage_trainer(s.name)
        stages.append(Stage(s.name, spec.preset(s.name), config_cls, trainer, files, dict(s.upstream), extra,
                            former=s.former))  # fmt: skip
    return stages


def stage_trainer(stage: str) -> Callable[[Any], StageSummary]:
    """The function that trains (or resumes, or reuses) one run of ``stage`` from its
    config: what a chain and ``laom train STAGE`` call. Imported only now (torch)."""
    if stage == "lam":
        from laom.training.lam import train_lam

        return train_lam
    if stage == "bc":
        from laom.training.bc import train_bc

        return train_bc
    if stage == "decoder":
        from laom.training.decoder import train_decoder

        return train_decoder
    if stage == "idm":
        from laom.training.baselines import train_idm

        return train_idm
    if stage == "idm-bc":
        from laom.training.baselines import train_idm_bc

        return train_idm_bc
    if stage == "bc-baseline":
        from laom.training.baselines import train_bc_baseline

        return train_bc_baseline
    raise LaomError(f"no stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")


def preset_path(preset: str, stem: str) -> Path | None:
    """``cpu`` (built-in defaults where no file exists), ``paper``, ``demo`` (shipped with
    the package: laom.training.presets), or a folder of YAML files."""
    from laom.training.presets import preset_file, preset_names

    shipped = "/" not in preset and not Path(preset).is_dir()  # a folder of that name wins
    path = preset_file(preset, stem) if shipped else Path(preset) / f"{stem}.yaml"
    if path is not None and path.is_file():
        return path
    if preset == "cpu":
        return None
    known = preset in preset_names() if shipped else Path(preset).is_dir()
    if not known:
        raise LaomError(f"--preset {preset}: no such preset ({', '.join(preset_names())}) or folder")
    raise LaomError(f"--preset {preset}: no {path or f'{preset}/{stem}.yaml'}")


STAGE_NAMES = methods.STAGE_NAMES
# Fields the commands set themselves (from their own flags or upstream stages).
FILE_FIELDS = ("method", "data", "labeled", "eval_data", "out", "lam", "policy", "idm")


def stage_configs(stage: str, method: str | None = None) -> dict[str, type]:
    """A stage's config class by label: one per method for lam (their defaults differ),
    only ``method``'s when given."""
    if stage == "lam":
        from laom.training.lam import CONFIGS

        return {method: CONFIGS[method]} if method else dict(CONFIGS)
    if stage in ("idm", "idm-bc", "bc-baseline"):
        from laom.training.baselines import BCBaselineConfig, IDMBCConfig, IDMConfig

        return {stage: {"idm": IDMConfig, "idm-bc": IDMBCConfig, "bc-baseline": BCBaselineConfig}[stage]}
    if stage == "bc":
        from laom.training.bc import BCConfig

        return {stage: BCConfig}
    from laom.training.decoder import DecoderConfig

    require(stage == "decoder", f"no stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
    return {stage: DecoderConfig}


def preset_stages() -> dict[str, type]:
    """Config class by the stem of its preset file: one lam entry per method, since their
    defaults and presets differ (lam-lapo, lam-laom, lam-laom-labels, ...), then bc, decoder,
    idm, idm-bc, bc-baseline. The stages ``laom config show`` resolves."""
    out = {f"lam-{method}": cls for method, cls in stage_configs("lam").items()}
    for stage in STAGE_NAMES[1:]:
        out.update(stage_configs(stage))
    return out


def method_stages(method: str | None) -> tuple[str, ...]:
    """The stages ``method`` chains (every stage when no method is given)."""
    spec = methods.METHODS.get(method or "")
    return spec.stage_names if spec is not None else STAGE_NAMES


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
    ``--stage.field`` also reaches the stages split from ``stage`` (``Stage.former``)
    that have the field: ``--idm.epochs`` is the IDM baseline's policy's, in idm-bc.
    """
    names = {s.name: {f.name for f in dataclasses.fields(s.config_cls)} for s in stages}
    out: dict[str, list[str]] = {s.name: [] for s in stages}
    # parse_config reads a field's values, and names the flag if they do not fit its type.
    for name, values in override_items(extra, "overrides are --field value or --stage.field value"):
        stage, dot, fname = name.partition(".")
        if dot:
            stage = stage.replace("_", "-")
            if stage not in STAGE_NAMES:
                raise LaomError(f"--{name}: no stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
            reached = [s.name for s in stages if stage in (s.name, s.former)]
            if not reached:
                if ignored is not None:
                    ignored.append(f"--{name}")
                continue
            having = [s for s in reached if fname.replace("-", "_") in names[s]]
            for s in having or reached[:1]:  # none has it: the first one's config names the unknown field
                out[s] += [f"--{fname}", *values]
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
    from laom.models.device import keyed_precision
    from laom.training.bc import file_identity
    from laom.training.config import config_to_dict

    config = {}
    for name, value in config_to_dict(cfg).items():
        if name == "precision":
            config[name] = keyed_precision(str(value), str(getattr(cfg, "device", "auto")))
        elif name in KEYED_AT_DEFAULT:
            config[name] = default_of(type(cfg), name)
        elif name in ADDED_FIELDS and value == ADDED_FIELDS[name]:
            continue  # keys made before the field existed stay valid
        elif name != "out" and name not in NON_RESULT_FIELDS:  # out: the folder the key names
            config[name] = value
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
    from laom.training.config import check_stage_inputs, parse_config

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
    from laom.training.rundir import RunDir  # (imports torch: not at `laom --help` time)

    results = []
    upstream_trained = False  # an earlier stage of the chain trains now (was not reused)
    for p in planned:
        run = RunDir(p.path)
        again = None  # why a folder that holds results trains from the start
        if upstream_trained and (run.summary_path.is_file() or run.checkpoint_dir.is_dir()):
            # Its upstream trains now (its weights were gone, or its folder was deleted):
            # what this stage holds read other weights than the ones it will be used with.
            shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
            again = "its upstream stage trained again, so it trains again"
        elif run.summary_path.is_file() and not run.finished:
            again = f"{', '.join(run.missing_artifacts())} missing (pruned or restored from records): training again"
        cached = run.finished and again is None
        resumed = not cached and run.checkpoint_path.is_file()
        if not cached and not resumed:
            # Results of an earlier training of this folder (a finished run whose weights
            # are gone, a partial one restored from records) must not mix with the new
            # run's: curve points it has would be skipped, its summary would pin it.
            run.set_aside_results()
        upstream_trained = upstream_trained or not cached
        state = again or ("done, reused" if cached else "resuming" if resumed else "training")
        log(f"[{p.stage.name}] {p.path}: {state}")
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
    until: str = ""  # the last stage to run ("" = every stage, then the evaluation)


def cut_chain(stages: list[Stage], until: str, method: str, flag: str = "--until") -> list[Stage]:
    """The chain up to and including ``until`` ("" = whole). Why: a finding that turns on
    a LAM's probe alone (does it encode the action under distractors?) can have its
    seeds for a fifth of a whole run's compute, without latent BC, decoders or returns."""
    if not until:
        return stages
    names = [s.name for s in stages]
    require(until in names, f"{flag} {until}: {method} has no such stage (its stages: {', '.join(names)})")
    return stages[: names.index(until) + 1]


def check_until(method: str, until: str, episodes: int, flag: str = "--until") -> bool:
    """Whether ``until`` cuts ``method``'s chain short; a cut chain has no acting policy,
    so it must not be asked for an evaluation (checked before any work)."""
    stages = cut_chain(chain(method, "d", "l", "e"), until, method, flag)
    cut = len(stages) < len(methods.get(method).stages)
    require(not cut or episodes == 0,
            f"{flag} {until}: {method} stops before its acting policy, so there is nothing to evaluate; add --episodes 0")  # fmt: skip
    return cut


def check_inputs(method: str, data: str, labeled: str, eval_data: str, episodes: int) -> None:
    """LaomError unless the method's files hold one task with the same frame, action and
    state sizes, and (when it will be evaluated) a task the environments have."""
    from laom.data.compat import check_compatible

    files = {"--data": data, "--labeled": labeled, "--eval-data": eval_data}
    if not methods.get(method).reads("data"):  # bc trains on --labeled alone
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
    from laom.evaluation.run import evaluate_run, resolve_normalizer

    require(opts.method in METHODS, f"--method {opts.method}: expected one of {', '.join(METHODS)}")
    require(bool(opts.out), "--out is required")
    check_output(opts.out, "--out", kind="dir", create_parents=True)
    needs_data = methods.get(opts.method).reads("data")
    needs_labeled = methods.get(opts.method).reads("labeled")
    require(bool(opts.data) or not needs_data, f"--method {opts.method} needs --data FILE")
    require(bool(opts.labeled) or not needs_labeled, f"--method {opts.method} needs --labeled FILE")
    require(opts.episodes >= 0, f"--episodes {opts.episodes}: expected >= 0")
    require(opts.workers >= 0, f"--workers {opts.workers}: expected >= 0 (0 = in this process)")
    require(opts.num_envs >= 1, f"--num-envs {opts.num_envs}: expected >= 1")
    require(opts.max_steps is None or opts.max_steps >= 1, f"--max-steps {opts.max_steps}: expected >= 1")
    require(opts.eval_seed >= 0, f"--eval-seed {opts.eval_seed}: expected >= 0")
    check_until(opts.method, opts.until, opts.episodes)

    def absolute(p: str) -> str:
        return str(Path(p).resolve()) if p else ""

    data, labeled, eval_data = absolute(opts.data), absolute(opts.labeled), absolute(opts.eval_data)
    whole = chain(opts.method, data if needs_data else "", labeled if needs_labeled else "", eval_data)
    ignored: list[str] = []
    # Settings are routed over the whole chain: a later stage's, cut off by --until, are no error.
    overrides = split_overrides(list(opts.overrides), whole, opts.method, ignored)
    stages = cut_chain(whole, opts.until, opts.method)
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
        "stages": {r.name: StageRef(str(r.path), r.key, r.cached).to_json() for r in results},
        "stage_seconds": {r.name: round(r.seconds, 3) for r in results},  # a sweep's ETA per stage kind
        "data": data, "labeled": labeled, "eval_data": eval_data, "preset": opts.preset,
        **({"until": opts.until} if opts.until else {}),
    }  # fmt: skip
    lam = next((r.summary for r in results if r.name == "lam"), None)
    if isinstance(lam, LAMSummary):
        summary.update({
            "action_probe_mse": lam.action_probe_mse, "action_probe_baseline_mse": lam.action_probe_baseline_mse,
            "state_probe_mse": lam.state_probe_mse, "action_probe_r2": lam.action_probe_r2,
            "distractor_probe_r2": lam.distractor_probe_r2,
        })  # fmt: skip
    if isinstance(acting.summary, PolicySummary) and acting.summary.offline is not None:
        summary["offline"] = acting.summary.offline.to_json()
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
    key = digest({"acting": acting.key, **evaluation, "normalizer": normalizer,
                  **({"until": opts.until} if opts.until else {})})  # fmt: skip
    out_file = root / f"pipeline-{opts.method}-{key}.json"
    summary["summary_file"] = str(out_file)
    summary.update(code_version())
    atomic_write_text(out_file, json.dumps(summary, indent=2) + "\n")
    return summary
