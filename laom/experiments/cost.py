"""What a sweep costs, before it runs (``laom sweep ... --plan``) and against what it took
(the table a sweep prints at its end).

A stage's time is not guessed from earlier runs of other shapes: it is its work, known
from the configs and the files' sizes before anything trains, divided by how fast this
machine does that work. Each stage is a few parts, each an amount at a measured rate:

- training: updates x batch samples at the stage model's update rate (samples/s);
- forward passes of a frozen model: transitions labelled by the LAM for latent BC, the
  LAM's probes, the IDM's pseudo-labels, the latent policy over the labelled file for
  the decoder, the offline action MSE (transitions/s);
- frames read from the HDF5 files (frames/s);
- online episodes: starting the environments (environments/s) and stepping them (steps/s), for
  the final evaluation and for an acting policy's learning-curve points.

A rate depends on the machine and on the *shape* of one unit of work (the stage config
minus the fields that only say how much work there is or how it is logged, plus the
frames' size), never on how long a stage runs: a few updates predict a run of any
length, and one measurement serves every sweep of that shape.

Rates live in one JSON file, by default ``$XDG_CACHE_HOME/laom/stage-rates.json``
(``~/.cache/laom/stage-rates.json``): rates belong to the machine, not to one sweep, and
``--plan`` writes nothing into a sweep folder. ``--rates FILE`` picks another file.
Entries are keyed by (machine, kind, shape), so another CPU, core count, torch build or
setting gets its own. ``--plan`` measures the missing ones with a short calibration: a
few updates of each stage kind at the sweep's settings on random frames of the data's
size, a few forward batches, two trajectories read from --data, and one short
evaluation whose timed policy calls separate the start from the per-step rate.
``--recalibrate`` measures them again (say, after the machine was busy). A normal sweep
never calibrates: it predicts from the file and prints what it has.

Left out of the model: building models, checkpoint writes, the probes' linear fit,
streamed reads (``--stream`` is calibrated in memory) and other processes competing for
the CPU (rates measured beside another job are that much slower, and so is a sweep run
beside one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from laom import methods as registry
from laom.errors import LaomError, require

RATES_VERSION = 1
# laom.envs episodes end by truncation at the suite's time limit.
EPISODE_STEPS = 1000
# LearningCurve's defaults: offline samples per point, environments stepped in lockstep.
CURVE_OFFLINE_SAMPLES = 5000
CURVE_NUM_ENVS = 4
# Batch of the frozen forward passes (label_transitions, predict_latents, offline MSE).
FORWARD_BATCH = 256
# Config fields that set how much work a stage does, which files, or how it is logged:
# not what one sample costs. Everything else is part of a rate's shape.
NOT_SHAPE = frozenset({
    "seed", "epochs", "total_updates", "min_updates", "learning_rate", "warmup_epochs", "weight_decay",
    "checkpoint_every", "log_every", "progress", "tensorboard", "wandb", "wandb_project",
    "data", "labeled", "eval_data", "out", "lam", "policy", "idm", "max_trajectories",
    "target_tau", "label_coef", "label_norm", "online_probe_lr", "probe_every", "probe_curve_samples",
    "probe_samples", "probe_eval_samples", "probe_ridge", "holdout_fraction", "cache_dtype",
    "eval_samples", "curve_every", "curve_episodes", "curve_workers",
    "snapshot_every", "snapshot_episodes", "snapshot_workers",
    "idm_updates", "idm_learning_rate", "idm_warmup_updates",
})  # fmt: skip


def default_rates_path() -> Path:
    """Where rates are cached when --rates is not given: the user's cache folder, since a
    rate belongs to the machine and serves every sweep on it."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "laom" / "stage-rates.json"


def machine() -> dict[str, Any]:
    """What a rate was measured on: another CPU, core count or torch build needs its own."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "torch": torch.__version__}


def format_seconds(seconds: float) -> str:
    """h:mm:ss or m:ss, the way the sweep's progress shows times."""
    total = round(max(0.0, seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# --------------------------------------------------------------------------- rates


@dataclass(frozen=True)
class Rate:
    """One kind of work at one shape. ``measure`` (not part of its identity) measures it,
    and the other rates the same measurement gives, as units per second."""

    kind: str  # "lam-laom train", "evaluate steps", ...
    unit: str  # samples | transitions | frames | steps | environments
    shape: str  # canonical JSON of what sets the cost of one unit
    measure: Callable[[], dict[Rate, float]] | None = field(default=None, compare=False, hash=False, repr=False)


def shape_of(cfg: Any, fields: Iterable[str] | None = None, **extra: Any) -> str:
    """The shape of a stage config: its fields (or ``fields`` of them) outside NOT_SHAPE,
    plus ``extra`` (frame size, action size, ...)."""
    from laom.training.config import config_to_dict

    values = config_to_dict(cfg)
    names = set(values) if fields is None else set(fields) & set(values)
    kept = {k: values[k] for k in sorted(names) if k not in NOT_SHAPE}
    return json.dumps({**kept, **extra}, sort_keys=True, default=str)


class RateBook:
    """The rates file: per (machine, kind, shape), units per second and when measured."""

    def __init__(self, path: Path | None, entries: dict[str, dict[str, Any]] | None = None,
                 host: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.path = path
        self.entries = dict(entries or {})
        self.host = machine() if host is None else host

    @classmethod
    def load(cls, path: str | Path, flag: str = "--rates") -> RateBook:
        """The rates at ``path`` (none yet if it does not exist); anything else there is
        refused with one line, never overwritten."""
        p = Path(path).expanduser()
        require(not p.is_dir(), f"{flag} {p}: is a directory, expected a rates file (.json)")
        if not p.exists():
            return cls(p)
        try:
            doc = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise LaomError(f"{flag} {p}: not a rates file ({' '.join(str(exc).split())[:120]})") from None
        ok = isinstance(doc, dict) and doc.get("version") == RATES_VERSION and isinstance(doc.get("rates"), dict)
        require(ok, f"{flag} {p}: not a laom rates file (expected {{\"version\": {RATES_VERSION}, \"rates\": {{...}}}})")
        entries = {k: v for k, v in doc["rates"].items() if isinstance(v, dict) and _positive(v.get("per_s"))}
        return cls(p, entries)

    def key(self, rate: Rate) -> str:
        text = json.dumps([self.host, rate.kind, rate.unit, rate.shape], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def get(self, rate: Rate) -> float | None:
        entry = self.entries.get(self.key(rate))
        return float(entry["per_s"]) if entry is not None else None

    def put(self, rate: Rate, per_s: float, seconds: float = 0.0) -> None:
        self.entries[self.key(rate)] = {
            "kind": rate.kind, "unit": rate.unit, "per_s": float(per_s), "shape": json.loads(rate.shape),
            "machine": self.host, "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "calibration_s": round(seconds, 2),
        }  # fmt: skip

    def save(self) -> None:
        """Written whole under a temporary name and renamed: a kill never leaves half a file."""
        from laom.outputs import atomic_write_text

        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"version": RATES_VERSION, "rates": self.entries}, indent=1) + "\n")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@dataclass
class Work:
    """An amount of one kind of work: its time is ``amount / rate``."""

    rate: Rate
    amount: float
    what: str


def estimate(works: Sequence[Work], book: RateBook) -> tuple[float, list[Rate]]:
    """(seconds of the works whose rate is known, the rates that are not)."""
    seconds, missing = 0.0, []
    for work in works:
        if work.amount <= 0:
            continue
        per_s = book.get(work.rate)
        if per_s is None:
            missing.append(work.rate)
        else:
            seconds += work.amount / per_s
    return seconds, missing


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Size:
    """Frames and (o_t, o_t+1) transitions of a file (or of a labelled subset to be made)."""

    frames: int
    transitions: int
    trajectories: int = 1

    def limited(self, max_trajectories: int) -> Size:
        """The share a stage with ``--max_trajectories`` reads (trajectories of mean length)."""
        if max_trajectories <= 0 or max_trajectories >= self.trajectories:
            return self
        share = max_trajectories / self.trajectories
        return Size(round(self.frames * share), round(self.transitions * share), max_trajectories)


def file_size(path: str, flag: str) -> Size:
    from laom.data.compat import data_facts

    facts = data_facts(path, flag)
    return Size(facts.transitions + facts.trajectories, facts.transitions, facts.trajectories)


def subset_size(data: str, n: int, seed: int, chunk: int) -> Size:
    """The labelled subset the sweep will draw (the same chunks sample_labeled picks), so
    its size is known before the file exists."""
    from laom.data.format import DatasetReader
    from laom.data.labeled import chunks_of, pick_chunks

    with DatasetReader(data) as reader:
        lengths = {i: reader.length(i) for i in reader.indices}
    picked = pick_chunks(chunks_of(lengths, chunk), n, seed)
    return Size(sum(c.length for c in picked), sum(max(0, c.length - 1) for c in picked), len(picked))


@dataclass
class Inputs:
    """What one run's stages read and how it is evaluated: enough to size every stage."""

    data: Size
    labeled: Size | None
    eval: Size | None
    frames: dict[str, Any]  # img_hw, action_dim, state_dim of --data
    env: dict[str, Any]  # laom.envs.make arguments of --data (without frame_stack)
    data_path: str
    episodes: int = 0
    max_steps: int | None = None
    workers: int = 0
    num_envs: int = 4

    @property
    def episode_steps(self) -> int:
        return min(self.max_steps, EPISODE_STEPS) if self.max_steps else EPISODE_STEPS


def data_inputs(path: str, flag: str = "--data") -> tuple[dict[str, Any], dict[str, Any]]:
    """(frame layout, environment) of a dataset, from its header."""
    from laom.data.compat import data_facts
    from laom.data.format import DatasetReader

    facts = data_facts(path, flag)
    with DatasetReader(path) as reader:
        attrs = reader.attrs
    frames = {"img_hw": facts.img_hw[0], "action_dim": facts.action_dim, "state_dim": facts.state_dim}
    env = {
        "task": facts.task, "difficulty": str(attrs.get("difficulty", "scale_easy_video_hard")),
        "backgrounds": attrs.get("backgrounds", "procedural"), "split": str(attrs.get("split", "train")),
        "img_hw": facts.img_hw[0], "dynamic": bool(attrs.get("dynamic", True)),
    }  # fmt: skip
    if env["backgrounds"] in (None, "", "procedural", "None"):
        env["backgrounds"] = None
    return frames, env


# --------------------------------------------------------------------------- rates of each kind


def lam_train(cfg: Any, inputs: Inputs) -> Rate:
    """A LAM's whole update (the method's model and its shape), samples/s."""
    return Rate(f"lam-{cfg.method} train", "samples", shape_of(cfg, **inputs.frames),
                lambda: measure_lam(cfg, inputs))  # fmt: skip


def lam_forward(cfg: Any, inputs: Inputs) -> Rate:
    """A frozen LAM's latent action (latent BC's labels, the probes), transitions/s."""
    return Rate(f"lam-{cfg.method} forward", "transitions", shape_of(cfg, **inputs.frames),
                lambda: measure_lam(cfg, inputs))  # fmt: skip


def policy_fields() -> set[str]:
    """The fields that describe a pixel policy and its training: those of BC-baseline's
    config (the IDM baseline's policy, idm-bc, has the same ones but the frame stack,
    which is its IDM's and is given to the rates beside these)."""
    from laom.training.baselines import BCBaselineConfig

    return {f.name for f in dataclasses.fields(BCBaselineConfig)}


def policy_train(cfg: Any, inputs: Inputs, kind: str, frame_stack: int, out_dim: int) -> Rate:
    """A pixel policy's update through fit (latent BC, BC, BC-full, the IDM's policy), samples/s."""
    shape = shape_of(cfg, policy_fields(), frame_stack=frame_stack, out_dim=out_dim, **inputs.frames)
    return Rate(f"{kind} train", "samples", shape, lambda: measure_policy(cfg, inputs, kind, frame_stack, out_dim))


def policy_forward(cfg: Any, inputs: Inputs, kind: str, frame_stack: int, out_dim: int) -> Rate:
    """A frozen pixel policy over transitions (decoder inputs, offline MSE), transitions/s."""
    shape = shape_of(cfg, policy_fields(), frame_stack=frame_stack, out_dim=out_dim, **inputs.frames)
    return Rate(f"{kind} forward", "transitions", shape, lambda: measure_policy(cfg, inputs, kind, frame_stack, out_dim))


def decoder_train(cfg: Any, inputs: Inputs, latent_dim: int) -> Rate:
    """The action decoder's MLP update on cached latents, samples/s."""
    shape = shape_of(cfg, latent_dim=latent_dim, action_dim=inputs.frames["action_dim"])
    return Rate("decoder train", "samples", shape, lambda: measure_decoder(cfg, inputs, latent_dim))


def idm_train(cfg: Any, inputs: Inputs) -> Rate:
    """The IDM baseline's supervised IDM update (``cfg``: the idm stage's), samples/s."""
    return Rate("idm train", "samples", shape_of(cfg, **inputs.frames), lambda: measure_idm(cfg, inputs))


def idm_forward(cfg: Any, inputs: Inputs) -> Rate:
    """The IDM's pseudo-labelling pass over --data (``cfg``: the idm stage's, the model
    idm-bc runs), transitions/s."""
    return Rate("idm forward", "transitions", shape_of(cfg, **inputs.frames), lambda: measure_idm(cfg, inputs))


def read_rate(inputs: Inputs) -> Rate:
    """Frames/s of reading --data (the labelled subsets and --eval-data are written the same way)."""
    from laom.training.bc import file_identity

    ident = file_identity(inputs.data_path)
    shape = json.dumps({"path": ident["path"], "size": ident["size"]}, sort_keys=True)
    return Rate("read", "frames", shape, lambda: measure_read(inputs))


def eval_rates(inputs: Inputs, frame_stack: int, policy: Callable[[], Any], episodes: int, workers: int,
               num_envs: int) -> tuple[Rate, Rate, int]:  # fmt: skip
    """(steps, environment starts, environments) of ``evaluate`` with these settings.

    The environments step in lockstep, so steps/s is their aggregate; a start (process,
    environment, first reset) is counted per environment, so one measurement serves the
    final evaluation and the learning-curve points whatever their number of
    environments. ``policy()`` builds a policy of the acting shape to measure with (a
    forward pass is small beside a rendered step, so it is not part of the shape)."""
    envs = max(1, min(max(num_envs, workers), episodes))
    shape = json.dumps({**inputs.env, "frame_stack": frame_stack, "processes": workers > 0}, sort_keys=True, default=str)
    env = {**inputs.env, "frame_stack": frame_stack}
    steps = Rate("evaluate steps", "steps", shape)
    starts = Rate("evaluate start", "environments", shape)

    def measure() -> dict[Rate, float]:
        step_s, start_s = measure_evaluate(env, policy(), envs, workers)
        return {steps: 1.0 / step_s, starts: envs / max(start_s, 1e-3)}

    return dataclasses.replace(steps, measure=measure), dataclasses.replace(starts, measure=measure), envs


# --------------------------------------------------------------------------- work of each stage


def lam_updates(cfg: Any, transitions: int) -> int:
    """What LAMTrainer's schedule gives: epochs over the data (or --total_updates)."""
    from laom.training.optim import schedule_lengths

    return schedule_lengths(cfg, max(1, transitions // cfg.batch_size))[0]


def policy_updates(cfg: Any, transitions: int) -> int:
    """What bc.schedule gives: epochs over the data, at least ``min_updates``."""
    from laom.training.bc import schedule

    return schedule(cfg, SimpleNamespace(updates_per_epoch=max(1, transitions // cfg.batch_size)), cfg.min_updates)[0]


def _updates(n: int, batch: int) -> str:
    return f"{n:,} updates x {batch}"


def stage_work(name: str, cfg: Any, chain: dict[str, Any], method: str, inputs: Inputs) -> list[Work]:
    """The work of one stage (a PlannedStage's config; ``chain`` maps stage names of the
    same run to their configs, for what the stage builds on)."""
    read = read_rate(inputs)
    data, labeled, test = inputs.data, inputs.labeled or inputs.data, inputs.eval
    test_frames = test.frames if (test is not None and getattr(cfg, "eval_data", "")) else 0
    test_tr = test.transitions if (test is not None and getattr(cfg, "eval_data", "")) else 0
    works: list[Work] = []
    if name == "lam":
        data = data.limited(cfg.max_trajectories)
        total = lam_updates(cfg, data.transitions)
        works.append(Work(lam_train(cfg, inputs), total * cfg.batch_size, _updates(total, cfg.batch_size)))
        if test_tr:
            fit, held = data.transitions, test_tr
        else:
            held = round(data.transitions * cfg.holdout_fraction)
            fit = data.transitions - held
        probed = min(cfg.probe_samples, fit) + min(cfg.probe_eval_samples, held)
        if cfg.probe_every > 0:
            points = total // cfg.probe_every + 1 + (1 if total % cfg.probe_every else 0)
            probed += points * (min(cfg.probe_curve_samples, fit) + min(cfg.probe_curve_samples, held))
        works.append(Work(lam_forward(cfg, inputs), probed, "probe transitions"))
        extra = labeled.frames if registry.get(method).lam_reads_labels else 0
        works.append(Work(read, data.frames + extra + test_frames, "frames read"))
    elif name == "bc":
        lam = chain["lam"]
        data = data.limited(cfg.max_trajectories)
        total = policy_updates(cfg, data.transitions)
        rate = policy_train(cfg, inputs, "latent-bc", lam.frame_stack, lam.latent_dim)
        works.append(Work(rate, total * cfg.batch_size, _updates(total, cfg.batch_size)))
        labelled = data.transitions if cfg.cache_latents else total * cfg.batch_size
        works.append(Work(lam_forward(lam, inputs), labelled, "transitions labelled by the LAM"))
        works.append(Work(read, data.frames, "frames read"))
    elif name == "decoder":
        lam, bc = chain["lam"], chain["bc"]
        works.append(Work(decoder_train(cfg, inputs, lam.latent_dim), cfg.total_updates * cfg.batch_size,
                          _updates(cfg.total_updates, cfg.batch_size)))  # fmt: skip
        forward = policy_forward(bc, inputs, "latent-bc", lam.frame_stack, lam.latent_dim)
        works.append(Work(forward, labeled.transitions + min(cfg.eval_samples, test_tr), "latent policy transitions"))
        works.append(Work(read, labeled.frames + test_frames, "frames read"))
        works += snapshot_curve_work(cfg, chain, inputs, test_tr)
    elif name == "idm":
        works.append(Work(idm_train(cfg, inputs), cfg.idm_updates * cfg.idm_batch_size,
                          _updates(cfg.idm_updates, cfg.idm_batch_size) + " (IDM)"))  # fmt: skip
        works.append(Work(read, labeled.frames, "frames read"))
    elif name in ("idm-bc", "bc-baseline"):
        source = labeled if (name == "bc-baseline" and method != "bc-full") else data
        source = source.limited(cfg.max_trajectories)
        frame_stack = chain["idm"].frame_stack if name == "idm-bc" else cfg.frame_stack
        total = policy_updates(cfg, source.transitions)
        action_dim = inputs.frames["action_dim"]
        train = policy_train(cfg, inputs, "bc-baseline", frame_stack, action_dim)
        forward = policy_forward(cfg, inputs, "bc-baseline", frame_stack, action_dim)
        works.append(Work(train, total * cfg.batch_size, _updates(total, cfg.batch_size)))
        if name == "idm-bc":  # its pseudo-labels, and the IDM's own offline MSE
            works.append(Work(idm_forward(chain["idm"], inputs), source.transitions + min(cfg.eval_samples, test_tr),
                              "transitions labelled by the IDM"))  # fmt: skip
        works.append(Work(forward, min(cfg.eval_samples, test_tr), "offline MSE transitions"))
        works.append(Work(read, source.frames + test_frames, "frames read"))
        works += curve_work(cfg, total, inputs, test_tr, frame_stack)
    else:
        raise LaomError(f"no cost model for stage {name!r}")
    return works


def curve_work(cfg: Any, total: int, inputs: Inputs, test_tr: int, frame_stack: int) -> list[Work]:
    """An acting policy's learning-curve points (LearningCurve): the offline MSE and
    ``curve_episodes`` full-length episodes at every ``curve_every`` updates and at the end."""
    if cfg.curve_every <= 0:
        return []
    points = total // cfg.curve_every + (1 if total % cfg.curve_every else 0)
    action_dim = inputs.frames["action_dim"]
    works = [Work(policy_forward(cfg, inputs, "bc-baseline", frame_stack, action_dim),
                  points * min(CURVE_OFFLINE_SAMPLES, test_tr), f"{points} curve points (offline)")]  # fmt: skip
    if cfg.curve_episodes > 0:
        steps, starts, envs = eval_rates(inputs, frame_stack, lambda: random_policy(cfg, inputs, frame_stack),
                                         cfg.curve_episodes, cfg.curve_workers, CURVE_NUM_ENVS)  # fmt: skip
        works.append(Work(starts, points * envs, f"{points} curve points x {envs} environments"))
        works.append(Work(steps, points * cfg.curve_episodes * EPISODE_STEPS,
                          f"{points} x {cfg.curve_episodes} curve episodes"))  # fmt: skip
    return works


def snapshot_curve_work(cfg: Any, chain: dict[str, Any], inputs: Inputs, test_tr: int) -> list[Work]:
    """The latent acting policy's return curve (laom.training.decoder.snapshot_curve): a
    decoder per latent-BC snapshot and an evaluation of every snapshot and the final policy."""
    lam, bc = chain["lam"], chain["bc"]
    if cfg.snapshot_episodes <= 0:
        return []
    total = policy_updates(bc, inputs.data.limited(bc.max_trajectories).transitions)
    snapshots = (total - 1) // bc.snapshot_every if bc.snapshot_every > 0 else 0
    points = snapshots + 1
    labeled = inputs.labeled or inputs.data
    forward = policy_forward(bc, inputs, "latent-bc", lam.frame_stack, lam.latent_dim)
    works = [
        Work(decoder_train(cfg, inputs, lam.latent_dim), snapshots * cfg.total_updates * cfg.batch_size,
             f"{snapshots} curve decoders"),
        Work(forward, snapshots * labeled.transitions + points * min(CURVE_OFFLINE_SAMPLES, test_tr),
             f"{points} curve points (latent policy transitions)"),
    ]  # fmt: skip

    def policy() -> Any:
        return random_policy(bc, inputs, lam.frame_stack, lam.latent_dim, cfg)

    steps, starts, envs = eval_rates(inputs, lam.frame_stack, policy, cfg.snapshot_episodes, cfg.snapshot_workers,
                                     CURVE_NUM_ENVS)  # fmt: skip
    works.append(Work(starts, points * envs, f"{points} curve points x {envs} environments"))
    works.append(Work(steps, points * cfg.snapshot_episodes * EPISODE_STEPS,
                      f"{points} x {cfg.snapshot_episodes} curve episodes"))  # fmt: skip
    return works


def evaluate_work(acting: Any, chain: dict[str, Any], inputs: Inputs) -> list[Work]:
    """The final evaluation of a run: start the environments, then every episode's steps."""
    if "lam" in chain:
        frame_stack = chain["lam"].frame_stack

        def policy() -> Any:
            return random_policy(chain["bc"], inputs, frame_stack, chain["lam"].latent_dim, chain.get("decoder"))
    else:  # an acting policy of its own: BC's, or the IDM baseline's on its IDM's frame stack
        frame_stack = chain["idm"].frame_stack if "idm" in chain else acting.frame_stack

        def policy() -> Any:
            return random_policy(acting, inputs, frame_stack)

    steps, starts, envs = eval_rates(inputs, frame_stack, policy, inputs.episodes, inputs.workers, inputs.num_envs)
    n = inputs.episodes * inputs.episode_steps
    shown = f"{inputs.episodes} episode{'s' if inputs.episodes != 1 else ''} x {inputs.episode_steps:,} steps"
    return [Work(steps, n, shown), Work(starts, envs, f"{envs} environments")]


# --------------------------------------------------------------------------- calibration


class _Enough(Exception):
    """Raised from fit's per-update hook once enough updates are timed."""


def _timed(call: Callable[[int], Any], units: float, budget: float, max_calls: int = 50) -> float:
    """Units per second of ``call``: one untimed call (allocations, lazy init), then calls
    until ``budget`` seconds or ``max_calls`` (at least two)."""
    call(0)
    n, start = 0, time.perf_counter()
    while n < 2 or (n < max_calls and time.perf_counter() - start < budget):
        n += 1
        call(n)
    return n * units / (time.perf_counter() - start)


def random_frames(inputs: Inputs, frame_stack: int, batch: int, offset: int = 1) -> Any:
    """Random frames of the data's size, enough trajectories for two batches without
    replacement: throughput does not depend on what the pixels show."""
    import numpy as np

    from laom.data.sampler import FrameData

    hw, a, s = inputs.frames["img_hw"], inputs.frames["action_dim"], inputs.frames["state_dim"]
    length = max(64, 2 * (offset + frame_stack) + 2)
    count = max(2, math.ceil(2 * batch / (length - offset - 1)) + 1)
    n = count * length
    rng = np.random.default_rng(0)
    domain, _, task = str(inputs.env.get("task", "")).partition("-")
    return FrameData(
        frames=rng.integers(0, 256, (n, 3, hw, hw), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (n, a)).astype(np.float32),
        states=rng.normal(size=(n, s)).astype(np.float32),
        traj_offsets=np.arange(0, n + 1, length, dtype=np.int64),
        attrs={"domain_name": domain, "task_name": task},
    )


BUDGET_S = 1.5  # timed seconds per rate: a dozen rates in well under a minute


def measure_lam(cfg: Any, inputs: Inputs) -> dict[Rate, float]:
    """LAMTrainer.step (the whole update: gather, augment, forward, backward, AdamW, EMA)
    and the LAM's latent action over transitions, as latent BC labels them."""
    import numpy as np

    from laom.data.labelling import label_transitions
    from laom.training.lam import LAMTrainer
    from laom.training.runtime import setup_runtime

    batch = max(cfg.batch_size, cfg.labeled_batch_size)
    data = random_frames(inputs, cfg.frame_stack, batch, cfg.future_offset)
    runtime = setup_runtime(cfg)
    trainer = LAMTrainer(cfg, data, data if registry.lam_reads_labels(cfg.method) else None, runtime)
    trainer.model.train()
    train = _timed(lambda u: trainer.step(u), cfg.batch_size, BUDGET_S)
    model = trainer.model.eval()
    out = np.zeros((data.num_frames, cfg.latent_dim), np.float32)
    steps = len(data.valid_steps)

    def label(_: int) -> None:
        label_transitions(model.latent_action, data, cfg.frame_stack, out, runtime, FORWARD_BATCH, progress=False)

    forward = _timed(label, steps, BUDGET_S / 2)
    return {lam_train(cfg, inputs): train, lam_forward(cfg, inputs): forward}


def _fit_rate(model: Any, cfg: Any, sampler: Any, targets: Callable[[Any], Any], runtime: Any, *,
              batch: int, learning_rate: float, inputs: tuple[str, ...], augment: Any, channels_last: bool) -> float:  # fmt: skip
    """Samples/s of laom.training.bc.fit, the update loop of every pixel regressor, timed
    between its per-update hooks after the first update, in a scratch folder."""
    import tempfile

    from laom.training.bc import fit
    from laom.training.rundir import RunDir

    stamps: list[float] = []

    def hook(done: int, _model: Any) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) >= 4 and (len(stamps) > 60 or stamps[-1] - stamps[1] >= BUDGET_S):
            raise _Enough

    with tempfile.TemporaryDirectory(prefix="laom-calibrate-") as tmp:
        quiet = dataclasses.replace(cfg, out=tmp, progress=False, tensorboard=False, wandb=False,
                                    checkpoint_every=10**9, log_every=10**9)  # fmt: skip
        try:
            fit(model, sampler, targets, quiet, RunDir(tmp), runtime, total=10**6, warmup=0,
                learning_rate=learning_rate, inputs=inputs, augment=augment, channels_last=channels_last,
                desc="calibrate", on_update=hook)  # fmt: skip
        except _Enough:
            pass
    return (len(stamps) - 2) * batch / (stamps[-1] - stamps[1])


def measure_policy(cfg: Any, inputs: Inputs, kind: str, frame_stack: int, out_dim: int) -> dict[Rate, float]:
    """A pixel policy (latent BC, BC, BC-full, the IDM baseline's policy): fit's update
    and the frozen forward pass the decoder and the offline MSE run."""
    import numpy as np
    import torch

    from laom.training.bc import build_policy, make_augment, make_sampler
    from laom.training.decoder import predict_latents
    from laom.training.runtime import setup_runtime

    hw = inputs.frames["img_hw"]
    runtime = setup_runtime(cfg)
    data = random_frames(inputs, frame_stack, cfg.batch_size)
    policy = build_policy(cfg, (3 * frame_stack, hw, hw), out_dim, runtime.device)
    values = np.random.default_rng(1).normal(size=(data.num_frames, out_dim)).astype(np.float32)

    def targets(batch: Any) -> Any:
        return torch.from_numpy(values[batch.steps])

    sampler = make_sampler(data, cfg.batch_size, frame_stack, cfg.seed)
    train = _fit_rate(policy, cfg, sampler, targets, runtime, batch=cfg.batch_size, learning_rate=cfg.learning_rate,
                      inputs=("obs",), augment=make_augment(cfg.use_aug, hw, cfg.shift_aug),
                      channels_last=cfg.channels_last)  # fmt: skip
    policy.eval()
    steps = len(data.valid_steps)
    forward = _timed(lambda _: predict_latents(policy, data, frame_stack, runtime.device, FORWARD_BATCH), steps, BUDGET_S / 2)
    return {
        policy_train(cfg, inputs, kind, frame_stack, out_dim): train,
        policy_forward(cfg, inputs, kind, frame_stack, out_dim): forward,
    }


def measure_decoder(cfg: Any, inputs: Inputs, latent_dim: int) -> dict[Rate, float]:
    """The action decoder's update (an MLP on cached latents), as train_decoder runs it."""
    import torch
    import torch.nn.functional as F

    from laom.models.policy import ActionDecoder
    from laom.training.optim import make_optimizer, make_scheduler, optimizer_step
    from laom.training.runtime import setup_runtime, step_generator

    runtime = setup_runtime(cfg)
    device = runtime.device
    action_dim = inputs.frames["action_dim"]
    decoder = ActionDecoder(latent_dim, action_dim, cfg.hidden_dim, cfg.num_layers).to(device)
    z = torch.randn(4096, latent_dim, device=device)
    actions = torch.randn(4096, action_dim, device=device)
    optimizer = make_optimizer(decoder, cfg.learning_rate, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, 0, 10**6)

    def step(update: int) -> None:
        gen = step_generator(cfg.seed, update, device=device)
        idx = torch.randint(0, len(z), (cfg.batch_size,), generator=gen, device=device)
        loss = F.mse_loss(decoder(z[idx]), actions[idx])
        optimizer_step(loss, decoder, optimizer, scheduler, cfg.grad_clip, False)

    return {decoder_train(cfg, inputs, latent_dim): _timed(step, cfg.batch_size, BUDGET_S / 2, max_calls=2000)}


def measure_idm(cfg: Any, inputs: Inputs) -> dict[Rate, float]:
    """The IDM baseline's IDM (``cfg``: the idm stage's): its update on (o_t, o_t+1) and its
    pseudo-labelling pass, in batches of FORWARD_BATCH as the other frozen models'."""
    import numpy as np
    import torch

    from laom.data.labelling import label_transitions
    from laom.models.idm import ActionIDM
    from laom.training.bc import make_augment, make_sampler
    from laom.training.runtime import setup_runtime

    hw, action_dim, fs = inputs.frames["img_hw"], inputs.frames["action_dim"], cfg.frame_stack
    runtime = setup_runtime(cfg)
    data = random_frames(inputs, fs, cfg.idm_batch_size)
    torch.manual_seed(cfg.seed)
    idm = ActionIDM((3 * fs, hw, hw), action_dim, cfg.idm_encoder_scale, cfg.idm_num_res_blocks, cfg.encoder_channels,
                    cfg.idm_head_dim, arch=cfg.idm_arch).to(runtime.device)  # fmt: skip
    sampler = make_sampler(data, cfg.idm_batch_size, fs, cfg.seed, ("obs", "next_obs"), with_replacement=True)
    train = _fit_rate(idm, cfg, sampler, lambda batch: batch.arrays["actions"], runtime, batch=cfg.idm_batch_size,
                      learning_rate=cfg.idm_learning_rate, inputs=("obs", "next_obs"),
                      augment=make_augment(cfg.idm_use_aug, hw), channels_last=False)  # fmt: skip
    idm.eval()
    out = np.zeros((data.num_frames, action_dim), np.float32)
    steps = len(data.valid_steps)

    def label(_: int) -> None:
        label_transitions(idm, data, fs, out, runtime, FORWARD_BATCH, progress=False)

    return {idm_train(cfg, inputs): train, idm_forward(cfg, inputs): _timed(label, steps, BUDGET_S / 2)}


def measure_read(inputs: Inputs) -> dict[Rate, float]:
    """Frames/s of loading the first trajectories of --data (decompression and copy)."""
    from laom.data.sampler import load_frames

    start = time.perf_counter()
    data = load_frames(inputs.data_path, max_trajectories=2)
    return {read_rate(inputs): data.num_frames / max(time.perf_counter() - start, 1e-6)}


EVAL_STEPS = 50  # steps per calibration episode: enough rounds to time, short enough to be quick


def measure_evaluate(
    env: dict[str, Any], policy: Any, envs: int, workers: int, steps: int = EVAL_STEPS
) -> tuple[float, float]:
    """(seconds per environment step, seconds to start) of laom.evaluation.online.evaluate.

    One short evaluation: the policy is called once per lockstep round, the first time
    when every environment has started and reset, so its call times split the wall time
    into the start (and the close) and the rounds."""
    from laom.evaluation.online import evaluate

    calls: list[float] = []

    def act(obs: Any) -> Any:
        calls.append(time.perf_counter())
        return policy.act(obs)

    start = time.perf_counter()
    evaluate(act, {**env, "max_episode_steps": steps}, envs, seed=0, num_envs=envs, workers=workers, progress=False)
    wall = time.perf_counter() - start
    per_round = (calls[-1] - calls[0]) / max(1, len(calls) - 1)
    return per_round / envs, max(0.0, wall - len(calls) * per_round)


def random_policy(cfg: Any, inputs: Inputs, frame_stack: int | None = None, out_dim: int | None = None,
                  decoder: Any = None) -> Any:  # fmt: skip
    """An untrained acting policy of the run's shape (what it outputs does not change the
    time a step takes)."""
    from laom.models.policy import ActingPolicy, ActionDecoder
    from laom.training.bc import build_policy

    hw, action_dim = inputs.frames["img_hw"], inputs.frames["action_dim"]
    fs = cfg.frame_stack if frame_stack is None else frame_stack
    policy = build_policy(cfg, (3 * fs, hw, hw), out_dim or action_dim, "cpu")
    head = None
    if out_dim is not None:
        hidden, layers = (decoder.hidden_dim, decoder.num_layers) if decoder is not None else (256, 2)
        head = ActionDecoder(out_dim, action_dim, hidden, layers)
    return ActingPolicy(policy, head, {}).eval()


def calibrate(rates: Iterable[Rate], book: RateBook, log: Callable[[str], None] = print) -> None:
    """Measure ``rates`` into ``book`` and save it; a measurement that gives several rates
    (a LAM's update and forward pass, an evaluation's start and steps) runs once."""
    todo = list(dict.fromkeys(rates))
    measured: set[Rate] = set()
    if todo:
        log(f"calibrating {len(todo)} rate(s) on this machine, a few seconds each (saved in {book.path}):")
    for rate in todo:
        if rate in measured:
            continue
        require(rate.measure is not None, f"no way to measure {rate.kind}")
        log(f"  [{len(measured)}/{len(todo)}] measuring {rate.kind} ...")
        start = time.perf_counter()
        try:
            results = rate.measure()
        except LaomError:
            raise
        except Exception as exc:  # one line: the plan cannot be priced, the user can act on it
            raise LaomError(f"calibrating {rate.kind}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        seconds = time.perf_counter() - start
        for r, per_s in results.items():
            book.put(r, per_s, seconds)
            measured.add(r)
        shown = ", ".join(f"{r.kind} {per_s:,.4g} {r.unit}/s" for r, per_s in results.items())
        log(f"  [{len(measured)}/{len(todo)}] {shown} ({seconds:.1f} s)")
    book.save()


# --------------------------------------------------------------------------- the sweep's plan

TRAINS = ("train", "resume")


@dataclass
class StageRow:
    """One stage of one run: what will happen to it and what it costs.

    ``status``: train; resume (an interrupted stage: priced whole, so at most);
    cached (finished in the cache, reused); shared (trained by an earlier run of this
    sweep, then reused)."""

    run: str
    stage: str
    status: str
    folder: str
    works: list[Work] = field(default_factory=list)
    key: str = ""  # the stage's cache key ("" until its labelled subset exists, and for evaluate)
    seconds: float = 0.0
    missing: list[Rate] = field(default_factory=list)

    @property
    def trains(self) -> bool:
        return self.status in TRAINS


@dataclass
class SweepPlan:
    """Every stage of every run still to do, in the order the sweep starts them."""

    root: Path
    rows: list[StageRow]
    runs: int
    recorded: int
    jobs: int = 1

    def rates(self) -> list[Rate]:
        return list(dict.fromkeys(w.rate for row in self.rows if row.trains for w in row.works))


def reads_subset(method: str) -> set[str]:
    """The stages of ``method`` whose key depends on the labelled subset (they read it, or
    build on a stage that does): a subset not made yet gives them a new folder."""
    return set(registry.get(method).label_stages)


class _Sizes:
    """File sizes and layouts, each read once per plan."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self._memo: dict[Any, Any] = {}

    def _get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def inputs(self, task: str, labeled: int | None, seed: int, workers: int, num_envs: int) -> Inputs:
        cfg = self.cfg
        data = cfg.data[task]
        frames, env = self._get(("layout", task), lambda: data_inputs(data))
        eval_file = cfg.eval_data[task]
        return Inputs(
            data=self._get(("data", task), lambda: file_size(data, "--data")),
            labeled=None if labeled is None else self._get(("subset", task, labeled, seed),
                                                            lambda: subset_size(data, labeled, seed, cfg.chunk)),
            eval=self._get(("eval", task), lambda: file_size(eval_file, "--eval-data")) if eval_file else None,
            frames=frames, env=env, data_path=data, episodes=cfg.episodes, max_steps=cfg.max_steps,
            workers=workers, num_envs=num_envs,
        )  # fmt: skip


def plan_runs(cfg: Any, root: Path, todo: Sequence[Any], files: dict[str, str], threads: int | None,
              workers: int = 0, num_envs: int = 4) -> list[StageRow]:  # fmt: skip
    """The stage rows of the runs in ``todo`` (planned and linked as the sweep runs them).

    ``files[job.id]`` is the run's labelled subset, "" when it is not made yet: its
    stages that depend on it will train, in a folder named once the file exists. Every
    stage's folder comes from the pipeline's own planner, so "cached" means exactly what
    the run will find."""
    from laom.experiments.overrides import overrides_for
    from laom.training.pipeline import chain, cut_chain, plan_chain, split_overrides

    sizes = _Sizes(cfg)
    claimed: set[str] = set()
    rows: list[StageRow] = []
    for job in todo:
        method, task = job.method, job.task
        subset = files.get(job.id, "")
        fresh = reads_subset(method) if (job.labeled is not None and not subset) else set()
        data = cfg.data[task]
        labeled = subset or data  # a stand-in with the right layout until the subset exists
        spec = registry.get(method)
        stages = chain(method, data if spec.reads("data") else "", labeled if spec.reads("labeled") else "", cfg.eval_data[task])
        overrides = [*overrides_for(method, cfg.overrides), "--seed", str(job.seed)]
        if threads is not None:
            overrides += ["--threads", str(threads)]
        routed = split_overrides(overrides, stages, method, [])  # over the whole chain: --until's cut stages too
        planned = plan_chain(cut_chain(stages, cfg.until, method), root / "cache", cfg.preset, routed)
        configs = {p.stage.name: p.cfg for p in planned}
        inputs = sizes.inputs(task, job.labeled, job.seed, workers, num_envs)
        for p in planned:
            name = p.stage.name
            if name in fresh:
                status, folder = "train", "(new: its labelled subset is not made yet)"
            else:
                folder = p.path.name
                if str(p.path) in claimed:
                    status = "shared"
                elif (p.path / "summary.json").is_file():
                    status = "cached"
                elif (p.path / "checkpoints" / "last.pt").is_file():
                    status = "resume"
                else:
                    status = "train"
                if status in TRAINS:
                    claimed.add(str(p.path))
            works = stage_work(name, p.cfg, configs, method, inputs) if status in TRAINS else []
            rows.append(StageRow(job.id, name, status, folder, works, "" if name in fresh else p.key))
        if cfg.episodes > 0:
            acting = planned[-1]
            summary = evaluation_file(cfg, method, acting.key)
            done = acting.stage.name not in fresh and (root / "cache" / summary).is_file()
            works = [] if done else evaluate_work(acting.cfg, configs, inputs)
            rows.append(StageRow(job.id, "evaluate", "cached" if done else "train", summary if done else "", works))
    return rows


def evaluation_file(cfg: Any, method: str, acting_key: str) -> str:
    """The pipeline summary a sweep run writes once evaluated (run_pipeline's name for it:
    the sweep gives no split and no normaliser): its presence means the episodes are done."""
    from laom.training.pipeline import digest

    evaluation = {"episodes": cfg.episodes, "seed": cfg.eval_seed, "max_steps": cfg.max_steps, "split": None}
    return f"pipeline-{method}-{digest({'acting': acting_key, **evaluation, 'normalizer': None})}.json"


def plan_sweep(
    cfg: Any, root: Path, jobs: int = 1, workers: int = 0, num_envs: int = 4, first: Sequence[str] = ()
) -> SweepPlan:
    """What ``laom sweep`` would do in ``root`` now, reading and writing nothing there:
    runs recorded in runs.jsonl are done; labelled subsets that exist and would be
    reused name their stages' folders; the rest will be made."""
    from laom.experiments.labeled_subsets import labeled_is_valid, labeled_path
    from laom.experiments.plan import job_key, link_shared, plan_jobs, put_first
    from laom.experiments.runs_store import read_runs
    from laom.experiments.scheduler import run_threads

    all_jobs = plan_jobs(cfg)
    files: dict[str, str] = {}
    for job in all_jobs:
        if job.labeled is None:
            continue
        path = labeled_path(root, job.task, job.labeled, job.seed)
        if labeled_is_valid(path, cfg.data[job.task], job.labeled, job.seed, cfg.chunk):
            files[job.id] = str(path.resolve())
    recorded = {r.run_key for r in read_runs(root / "runs.jsonl")}
    todo = [
        j for j in all_jobs
        if (j.labeled is not None and j.id not in files) or job_key(cfg, j, files.get(j.id, "")) not in recorded
    ]  # fmt: skip
    todo = put_first(todo, first)
    link_shared(todo)
    rows = plan_runs(cfg, root, todo, files, run_threads(cfg, jobs), workers, num_envs)
    return SweepPlan(root, rows, len(all_jobs), len(all_jobs) - len(todo), jobs)


def price(rows: Sequence[StageRow], book: RateBook) -> None:
    """Fill every row's seconds (and the rates it lacks) from ``book``."""
    for row in rows:
        row.seconds, row.missing = estimate(row.works, book)


def _columns(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Aligned text columns (``right``: right-aligned), two spaces apart, no trailing blanks."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]


def _time(row: StageRow) -> str:
    if not row.trains:
        return "-"
    return format_seconds(row.seconds) if not row.missing else f">{format_seconds(row.seconds)}?"


def plan_lines(plan: SweepPlan, book: RateBook) -> list[str]:
    """The --plan listing: every stage of every run to do (trained, resumed, reused from
    the cache, or shared with an earlier run), its main work and its estimated time, then
    the totals and the rates they come from."""
    todo = len({row.run for row in plan.rows})
    lines = [f"sweep plan for {plan.root}: {plan.runs} runs, {plan.recorded} already recorded, {todo} to run"]
    if not plan.rows:
        return [*lines, "nothing to run"]
    table = [["run", "stage", "status", "work", "time", "folder"]]
    last = ""
    for row in plan.rows:
        main = row.works[0].what if row.works else ""
        table.append([row.run if row.run != last else "", row.stage, row.status, main, _time(row), row.folder])
        last = row.run
    lines += _columns(table, right=(4,))
    count = {s: sum(1 for r in plan.rows if r.status == s) for s in ("train", "resume", "cached", "shared")}
    total = sum(r.seconds for r in plan.rows)
    missing = sorted({r.kind for row in plan.rows for r in row.missing})
    lines.append(
        f"{count['train'] + count['resume']} stage(s) to train ({count['resume']} resumed, priced whole), "
        f"{count['cached']} reused from the cache, {count['shared']} shared with an earlier run of this sweep"
    )
    bound = f" (with --jobs {plan.jobs}: at best {format_seconds(total / plan.jobs)} of wall time)" if plan.jobs > 1 else ""
    lines.append(f"estimated time: {format_seconds(total)}{bound}" + (f"; no rate for {', '.join(missing)}" if missing else ""))
    used = [(r.kind, book.get(r), r.unit) for r in plan.rates()]
    shown = [[kind, f"{per_s:,.4g}" if per_s else "?", f"{unit}/s"] for kind, per_s, unit in used]
    if shown:
        lines.append(f"from these rates of this machine ({book.path}):")
        lines += ["  " + line for line in _columns(shown, right=(1,))]
    return lines


def actual_seconds(stage: str, summary: dict[str, Any] | None) -> float | None:
    """What a finished run recorded for ``stage``: its stage_seconds, and for the
    evaluation the rest of the run's wall time (None: the run failed or has no such part)."""
    if summary is None:
        return None
    seconds = summary.get("stage_seconds") or {}
    if stage == "evaluate":
        if not summary.get("episodes") or summary.get("wall_s") is None:
            return None
        return max(0.0, float(summary["wall_s"]) - sum(float(v) for v in seconds.values()))
    value = seconds.get(stage)
    return None if value is None else float(value)


def comparison_lines(rows: Sequence[StageRow], outcomes: Sequence[Any], rates: Path | None) -> list[str]:
    """Predicted beside actual for every stage the sweep trained: how far to trust the
    next --plan (and which stage kind the model gets wrong)."""
    summaries = {o.job.id: o.summary for o in outcomes}
    table = [["run", "stage", "predicted", "actual", "actual/predicted"]]
    predicted_total = actual_total = 0.0
    last = ""
    for row in rows:
        if not row.trains or row.run not in summaries:
            continue
        actual = actual_seconds(row.stage, summaries[row.run])
        known = not row.missing
        ratio = f"{actual / row.seconds:.2f}" if (actual is not None and known and row.seconds > 0) else "-"
        table.append([
            row.run if row.run != last else "", row.stage, format_seconds(row.seconds) if known else "-",
            "failed" if actual is None and summaries[row.run] is None else "-" if actual is None else format_seconds(actual),
            ratio,
        ])  # fmt: skip
        last = row.run
        if actual is not None and known:
            predicted_total += row.seconds
            actual_total += actual
    if len(table) == 1:
        return []
    ratio = f"{actual_total / predicted_total:.2f}" if predicted_total > 0 else "-"
    table.append(["total (stages with both)", "", format_seconds(predicted_total), format_seconds(actual_total), ratio])
    lines = ["predicted vs actual time per stage (the model of laom sweep --plan):", *_columns(table, right=(2, 3, 4))]
    missing = sorted({r.kind for row in rows if row.trains for r in row.missing})
    if missing:
        lines.append(f"not predicted (no measured rate in {rates}): {', '.join(missing)}; laom sweep ... --plan measures them")
    return lines


def run_plan(cfg: Any, out: str | Path, book: RateBook, *, jobs: int = 1, workers: int = 0, num_envs: int = 4,
             force: bool = False, recalibrate: bool = False, first: Sequence[str] = (),
             log: Callable[[str], None] = print) -> SweepPlan:  # fmt: skip
    """``laom sweep ... --plan``: refuse what the sweep would refuse, list its stages,
    measure the rates it lacks (all of them with ``recalibrate``), print the estimate.
    Trains nothing and writes nothing but the rates file."""
    from laom.experiments.sweep_dir import check_sweep_dir

    require(jobs >= 1, f"--jobs {jobs}: expected >= 1")
    root = Path(out).resolve()
    check_sweep_dir(root, cfg, force)
    plan = plan_sweep(cfg, root, jobs, workers, num_envs, first)
    needed = plan.rates()
    calibrate(needed if recalibrate else [r for r in needed if book.get(r) is None], book, log)
    price(plan.rows, book)
    for line in plan_lines(plan, book):
        log(line)
    return plan
