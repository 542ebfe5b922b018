"""Stage 1: train a latent action model (LAPO, LAOM, or either with a labelled action head:
LAPO+supervision, LAOM+supervision) on unlabelled observation sequences, then measure
its latent actions with linear probes.

Every update: gather a batch of (o_t, o_{t+1}, o_{t+k}) stacks, scale to [-1, 1],
call the model's ``loss`` (each method's loss reads top to bottom in its own file under
``laom/models``), AdamW step, LR schedule, EMA target update. Checkpoints go to
``RUN/checkpoints/last.pt``; re-running the same command resumes from there and ends
bit-identical (fp32, CPU) to an uninterrupted run, because each update's batch and
augmentations are functions of (seed, update).

After training: latent actions z = IDM(o_t, o_{t+1}) of (a sample of) the training
transitions train a closed-form linear probe to the true actions; its MSE is reported
on --eval-data (or on held-out training trajectories). A second probe maps the
observation embedding to the proprioceptive state. When the probe files record their
distractors (``laom collect`` does), further probes from z to the change of each
distractor between o_t and o_{t+1} say what else the latents encode
(``distractor_probe_r2``: R² per factor; null for files without records).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laom import methods
from laom.data.access import TrainingData
from laom.data.sampler import BatchSampler, FrameData, load_frames, to_model_input
from laom.data.streaming import open_training_data, training_sampler
from laom.errors import LaomError, require
from laom.models import lam_class, save_model
from laom.models.augment import Augmenter
from laom.models.device import Runtime
from laom.models.meta import LAMMeta
from laom.models.probe import distractor_changes, distractor_probe_r2, fit_linear_probe
from laom.training import distributed
from laom.training.config import TrainConfig, check_stage_inputs, config_to_dict
from laom.training.loop import Loop, load_model_state, model_state
from laom.training.metrics import read_jsonl
from laom.training.optim import make_optimizer, make_scheduler, optimizer_step, schedule_lengths
from laom.training.options import check_fields, opt
from laom.training.rundir import RunDir
from laom.training.runtime import maybe_compile, setup_runtime, step_generator
from laom.training.summaries import LAMSummary
from laom.training.trainlog import TrainLog

METHODS = tuple(m.name for m in methods.lam_methods())
# The methods whose LAM reads --labeled (a labelled action head on z), for help texts.
LABELLED = ", ".join(m.name for m in methods.lam_methods() if m.lam_reads_labels)
LABEL_NORMS = ("variance", "raw")
PROBE_CURVE_FILE = "probe_curve.jsonl"


@dataclass
class LAMConfig(TrainConfig):
    """LAM training. Defaults are the CPU preset of LAOM (laom/configs/cpu/lam-laom.yaml).

    Each method has its own class with its own preset (:data:`CONFIGS`: LAPOConfig,
    LAMConfig, LAOMLabelsConfig, ..., made from the method registry's entries;
    :func:`lam_config` picks by name). A class refuses another method's name, because
    ``LAMConfig(method="lapo")`` would otherwise train LAPO with LAOM's defaults (no
    quantisation, LAOM's augmentations).
    """

    STAGE = "lam"
    method: str = opt("laom", f"{' | '.join(METHODS)} (each has its own config class)", choices=METHODS)
    data: str = opt("", "unlabelled training file (actions are only read for the probe)")
    labeled: str = opt("", f"small labelled file ({LABELLED})")
    eval_data: str = opt("", "probe test file; empty = held-out training trajectories")
    out: str = opt("", "run directory")
    max_trajectories: int = opt(0, "use only the first N trajectories of --data; 0 = all", ge=0)
    stream: bool = opt(False, "read --data through a bounded cache instead of loading it (larger than RAM)")
    cache_mb: float = opt(4096.0, "--stream: memory for trajectory data in MB (two windows of half each)", gt=0)
    # schedule (TrainConfig fields, CPU-sized)
    batch_size: int = 64
    epochs: float = 1.0
    learning_rate: float = 3e-4
    warmup_epochs: float = 0.3
    checkpoint_every: int = 200
    # data
    frame_stack: int = opt(3, "frames per observation stack", ge=1)
    future_offset: int = opt(10, "the IDM sees o_{t+k}, k ~ U{1..future_offset}; below the trajectory length", ge=1)
    use_aug: bool = opt(False, "LAOM's augmentation chain on every input (the release: true; docs/lam_probes.md)")
    # model
    latent_dim: int = opt(8192, "size of the latent action", ge=1)
    encoder_scale: int = opt(1, "encoder width multiplier (cost grows with its square)", ge=1)
    num_res_blocks: int = opt(2, "residual blocks per encoder stage", ge=0)
    encoder_channels: tuple[int, ...] = opt((16, 32, 32), "channels of each encoder stage, e.g. 16,32,32",
                                            item_ge=1, nonempty=True)  # fmt: skip
    head_dim: int = opt(1024, "LAOM IDM/FDM MLP width", ge=1)
    head_blocks: int = opt(3, "LAOM IDM/FDM MLP blocks", ge=1)
    fsq_levels: tuple[int, ...] = opt((), "LAPO only: FSQ levels per dimension, e.g. 2,2,4; empty = no quantisation",
                                      item_ge=2)  # fmt: skip
    target: str = opt("ema", "LAOM target encoder", choices=("ema", "stopgrad"))
    target_tau: float = opt(0.0625, "EMA rate of the target encoder (laom/training/presets.py)", gt=0, le=1)
    # supervision (the methods whose LAM reads --labeled)
    labeled_batch_size: int = opt(128, f"labelled samples per update ({LABELLED})", ge=1)
    label_coef: float = opt(0.001, f"weight of the action loss on labelled samples ({LABELLED})", ge=0)
    # variance: the action head regresses standardised actions, so its loss is in units of
    # the action variance and label_coef means the same for any expert; raw: the release's
    # (the loss scales with the actions: x35 on the release's cheetah actions, x0.5 on ours)
    label_norm: str = opt("variance", "variance: standardised actions, so label_coef means the same for any "
                          "expert; raw: the release's", choices=LABEL_NORMS)  # fmt: skip
    # evaluation
    online_probe: bool = opt(True, "the release's protocol: a linear probe z -> a_t trained beside the LAM")
    # The release trains its online probe at the LAM's own rate; 1e-3 was this project's
    # earlier default (docs/lam_probes.md has curves at both).
    online_probe_lr: float = opt(0.0, "learning rate of the online probe; 0 = the LAM's learning_rate, "
                                 "as in the release", ge=0)  # fmt: skip
    probe_every: int = opt(0, "updates between closed-form probe points in probe_curve.jsonl; 0 = none", ge=0)
    probe_curve_samples: int = opt(10000, "transitions per side (fit, test) at each curve point; keep above latent_dim",
                                   ge=1)  # fmt: skip
    probe_samples: int = opt(20000, "training transitions used to fit the probes", ge=1)
    probe_eval_samples: int = opt(20000, "test transitions the probes are scored on", ge=1)
    probe_ridge: float = opt(1e-4, "ridge penalty of the closed-form probes (relative; the solve needs > 0)", gt=0)
    holdout_fraction: float = opt(0.1, "share of trajectories held out for the probe without --eval-data",
                                  gt=0, lt=1)  # fmt: skip
    channels_last: bool = opt(True, "channels-last memory layout (faster convolutions on CPU)")

    def __post_init__(self) -> None:
        own = type(self).__dataclass_fields__["method"].default
        if self.method != own and self.method in METHODS:
            raise LaomError(
                f"method {self.method!r} given to {type(self).__name__}, which holds {own}'s defaults; "
                f"use {CONFIGS[self.method].__name__} or lam_config({self.method!r}, ...)"
            )


def _config_class(method: methods.Method) -> type[LAMConfig]:
    """``method``'s config class: LAMConfig with the registry entry's defaults (its CPU
    preset, laom/configs/cpu/lam-<method>.yaml), named as the entry says. Its fields keep
    LAMConfig's help and ranges (laom.training.options.spec_of)."""
    assert method.lam is not None
    if method.lam.config == LAMConfig.__name__:
        return LAMConfig
    hints = typing.get_type_hints(LAMConfig)
    own = {"method": method.name, **method.lam.defaults}
    doc = (f"{method.label} ({method.summary}): LAMConfig with the CPU preset of "
           f"laom/configs/cpu/lam-{method.name}.yaml as defaults.")  # fmt: skip
    cls = dataclasses.make_dataclass(
        method.lam.config, [(name, hints[name], dataclasses.field(default=value)) for name, value in own.items()],
        bases=(LAMConfig,), namespace={"__doc__": doc},
    )  # fmt: skip
    cls.__module__ = __name__  # make_dataclass's own `module=` needs Python 3.12
    return cls


CONFIGS: dict[str, type[LAMConfig]] = {m.name: _config_class(m) for m in methods.lam_methods()}
# Each class under its own name in this module (``from laom.training.lam import
# LAPOConfig``), as its __module__ and __qualname__ say, whichever entry made it.
globals().update({cls.__name__: cls for cls in CONFIGS.values() if cls is not LAMConfig})


def lam_config(method: str, **fields: Any) -> LAMConfig:
    """The config of ``method`` with its own preset's defaults, ``fields`` set on top."""
    if method not in CONFIGS:
        raise LaomError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    return CONFIGS[method](**fields)


def data_signature(data: FrameData, frame_stack: int) -> dict[str, Any]:
    """What a trained LAM assumes about its inputs; checked on resume and by later stages."""
    domain, task = data.task_id()
    return {
        "img_hw": data.img_hw,
        "frame_stack": frame_stack,
        "action_dim": data.action_dim,
        "state_dim": data.state_dim,
        "domain_name": domain,
        "task_name": task,
    }


def check_same_task(a: FrameData, b: FrameData, what: str) -> None:
    ta, tb = a.task_id(), b.task_id()
    if all(ta) and all(tb) and ta != tb:
        raise LaomError(f"{what} {b.path} is {tb[0]}-{tb[1]} but --data is {ta[0]}-{ta[1]}")
    if b.img_hw != a.img_hw:
        raise LaomError(f"{what} {b.path}: image size {b.img_hw} differs from --data's {a.img_hw}")
    if b.action_dim != a.action_dim:
        raise LaomError(
            f"{what} {b.path}: action size {b.action_dim} differs from --data's {a.action_dim}"
        )


def action_variance(data: TrainingData) -> float:
    """Mean per-dimension variance of the data's actions: the probe MSE of chance."""
    acts = data.all_actions()[data.valid_steps].astype(np.float64)
    return float(max(acts.var(axis=0).mean(), 1e-12))


def build_model(cfg: LAMConfig, data: FrameData) -> nn.Module:
    """The registry's model class for ``cfg.method``, built from the config; a LAM that
    reads --labeled gets an action head the size of the data's actions."""
    obs_shape = (3 * cfg.frame_stack, data.img_hw, data.img_hw)
    action_dim = data.action_dim if methods.lam_reads_labels(cfg.method) else None
    return lam_class(cfg.method).from_config(cfg, obs_shape, action_dim)


def validate(cfg: LAMConfig) -> None:
    """Every field's range (their declarations), then what depends on several fields or
    on --data's trajectory lengths: all before a file is written or data is loaded."""
    check_fields(cfg)
    if not cfg.data:
        raise LaomError("--data is required")
    if not cfg.out:
        raise LaomError("--out is required")
    if methods.lam_reads_labels(cfg.method) and not cfg.labeled:
        raise LaomError(
            f"--method {cfg.method} needs --labeled FILE (the small action-labelled dataset)"
        )
    facts = check_stage_inputs(cfg)
    check_future_offset(cfg.future_offset, cfg.data)
    # The LAM draws batches without replacement from all of --data (latent BC draws with
    # replacement from a smaller file), and its probe needs two trajectories to split.
    data = facts["--data"]
    if not cfg.eval_data and data.trajectories < 2:
        raise LaomError(f"--data {data.path}: one trajectory cannot be split for the probe; pass --eval-data")
    if not cfg.max_trajectories and data.transitions < cfg.batch_size:
        raise LaomError(f"--batch_size {cfg.batch_size}: --data {data.path} has only {data.transitions} transitions")


def check_future_offset(future_offset: int, data: str) -> None:
    """``future_offset`` must be below the length of --data's longest trajectory: larger
    offsets are clamped to the trajectory's end, so the value would not mean what it says.
    Reads only the file's metadata."""
    from laom.data.format import DatasetReader

    if not data or not Path(data).is_file():  # not known yet (a plan), or reported where it is opened
        return
    try:
        with DatasetReader(Path(data)) as reader:
            longest = max((reader.length(i) for i in reader.indices), default=0)
    except LaomError:
        raise
    except Exception:  # an unreadable file is reported, with its reason, where it is loaded
        return
    if longest and future_offset >= longest:
        raise LaomError(
            f"--future_offset {future_offset}: expected < {longest}, the longest trajectory of --data {data}"
        )


def _split_holdout(
    data: TrainingData, fraction: float, seed: int, max_frames: int = 0
) -> tuple[FrameData, FrameData]:
    """(train, held-out) by whole trajectories (at least one each when possible).

    A streamed dataset loads only enough trajectories of each side to hold ``max_frames``
    frames (the probe's sample), so the probe stays within memory too.
    """
    n = data.num_trajectories
    if n < 2:
        raise LaomError(
            f"dataset {data.path}: one trajectory cannot be split for the probe; pass --eval-data"
        )
    k = min(n - 1, max(1, round(fraction * n)))
    order = np.random.default_rng([seed, 7]).permutation(n)
    return data.take(order[k:], max_frames), data.take(order[:k], max_frames)


@torch.no_grad()
def encode_transitions(
    model: nn.Module, data: FrameData, frame_stack: int, max_samples: int, runtime: Runtime, seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:  # fmt: skip
    """Latent actions z = IDM(o_t, o_{t+1}) (the pair later stages label with), the
    observation embedding of o_t, true actions and states for up to ``max_samples``
    transitions of ``data`` (a fixed random subset), and under ``distractors`` the change
    of each recorded distractor from o_t to o_{t+1} (None when ``data`` has no records)."""
    steps = data.valid_steps
    require(len(steps) > 0, f"{data.path}: no transition of {frame_stack} stacked frames to probe")
    if len(steps) > max_samples:
        steps = np.sort(np.random.default_rng([seed, 11]).choice(steps, max_samples, replace=False))
    sampler = BatchSampler(
        data, min(batch_size, len(steps)), frame_stack, 1, seed, keys=("obs", "next_obs")
    )
    was_training = model.training
    model.eval()
    # Filled in place: a list of batches and its concatenation held two copies of the
    # 20,000 x 8,192 latents (655 MB each) at the final probe.
    latent = embedding = None
    for i in range(0, len(steps), sampler.batch_size):
        chunk = steps[i : i + sampler.batch_size]
        arrays = sampler.gather(chunk, np.ones_like(chunk))
        obs = to_model_input(arrays["obs"], runtime.device)
        nxt = to_model_input(arrays["next_obs"], runtime.device)
        with runtime.autocast():
            z, emb = model.latent_action_and_embedding(obs, nxt)
        if latent is None or embedding is None:
            latent = torch.empty(len(steps), *z.shape[1:], dtype=torch.float32)
            embedding = torch.empty(len(steps), *emb.shape[1:], dtype=torch.float32)
        latent[i : i + len(chunk)] = z.float().cpu()
        embedding[i : i + len(chunk)] = emb.float().cpu()
    model.train(was_training)
    return {
        "latent": latent,
        "embedding": embedding,
        "actions": torch.from_numpy(data.actions[steps]),
        "states": torch.from_numpy(data.states[steps]),
        "distractors": distractor_changes(data.distractors, steps, 1),
    }


def run_probes(
    model: nn.Module, cfg: LAMConfig, train: FrameData, test: FrameData, runtime: Runtime
) -> dict[str, Any]:
    a = encode_transitions(model, train, cfg.frame_stack, cfg.probe_samples, runtime, cfg.seed)
    b = encode_transitions(
        model, test, cfg.frame_stack, cfg.probe_eval_samples, runtime, cfg.seed + 1
    )
    act = fit_linear_probe(a["latent"], a["actions"], b["latent"], b["actions"], cfg.probe_ridge)
    state = fit_linear_probe(
        a["embedding"], a["states"], b["embedding"], b["states"], cfg.probe_ridge
    )
    return {
        "action_probe_mse": act.mse,
        "action_probe_baseline_mse": act.baseline_mse,
        "action_probe_r2": act.r2,
        "state_probe_mse": state.mse,
        "state_probe_baseline_mse": state.baseline_mse,
        "state_probe_r2": state.r2,
        # what else z encodes: R² per distractor factor, null without distractor records
        "distractor_probe_r2": distractor_probe_r2(
            a["latent"], a["distractors"], b["latent"], b["distractors"], cfg.probe_ridge
        ),
        "probe_train_samples": len(a["latent"]),
        "probe_test_samples": len(b["latent"]),
    }


class ProbeCurve:
    """Closed-form probes every ``probe_every`` updates: probe MSE against training samples.

    One final probe says where a model ended, not whether more compute would help; the
    curve does. Each point fits on ``probe_curve_samples`` training transitions and
    scores on as many held-out ones (the same fixed samples at every point), beside the
    online probe's latest windowed loss. Rows go to ``RUN/probe_curve.jsonl``; a resumed
    run adds only the missing points. The loop that calls it (:class:`laom.training.loop.Loop`)
    leaves the time spent out of samples/s.
    """

    def __init__(self, path: Path, cfg: LAMConfig, total: int, batch_size: int) -> None:
        self.path, self.cfg, self.total, self.batch_size = path, cfg, total, batch_size
        self.enabled = cfg.probe_every > 0 and distributed.is_main()
        self.done = {int(row["update"]) for row in read_jsonl(path)} if self.enabled else set()

    def __call__(
        self, update: int, model: nn.Module, train: FrameData, test: FrameData, runtime: Runtime, log: TrainLog
    ) -> None:  # fmt: skip
        every = self.cfg.probe_every
        if not self.enabled or update in self.done or (update % every and update != self.total):
            return
        n = self.cfg.probe_curve_samples
        a = encode_transitions(model, train, self.cfg.frame_stack, n, runtime, self.cfg.seed)
        b = encode_transitions(model, test, self.cfg.frame_stack, n, runtime, self.cfg.seed + 1)
        act = fit_linear_probe(a["latent"], a["actions"], b["latent"], b["actions"], self.cfg.probe_ridge)
        state = fit_linear_probe(a["embedding"], a["states"], b["embedding"], b["states"], self.cfg.probe_ridge)
        row = {
            "update": update, "samples": update * self.batch_size,
            # a probe with fewer fitting samples than features interpolates: read it as such
            "probe_fit_samples": len(a["latent"]), "latent_dim": int(a["latent"].shape[1]),
            "action_probe_mse": act.mse, "action_probe_baseline_mse": act.baseline_mse,
            "action_probe_rel": act.mse / max(act.baseline_mse, 1e-12),
            "state_probe_r2": state.r2,
            "distractor_probe_r2": distractor_probe_r2(a["latent"], a["distractors"], b["latent"], b["distractors"],
                                                       self.cfg.probe_ridge),
            "online_probe_mse": log.last.get("online_probe_mse"),
            "online_probe_rel": log.last.get("online_probe_rel"),
        }  # fmt: skip
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self.done.add(update)


class LossForward(nn.Module):
    """``forward`` = the wrapped LAM's ``loss``: what DDP needs to hook the loss call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.loss(*args, **kwargs)


class LAMTrainer:
    """Model, optimiser, schedule, samplers and the update step of one LAM run.

    Shared by :func:`train_lam` and ``benchmarks/lam_speed.py`` so the benchmark times
    exactly the training step. Update ``u``'s batch, future offsets, labelled batch and
    augmentations are all functions of (seed, u).
    """

    def __init__(
        self, cfg: LAMConfig, data: FrameData, labeled: FrameData | None, runtime: Runtime
    ) -> None:
        self.cfg = cfg
        self.runtime = runtime
        # Under torchrun each rank gathers its slice of the global batch (distributed.py).
        self.sampler = distributed.shard(training_sampler(
            data, cfg.batch_size, cfg.frame_stack, cfg.future_offset, cfg.seed
        ))  # fmt: skip
        self.label_sampler = None
        self.label_mean: torch.Tensor | None = None
        self.label_std: torch.Tensor | None = None
        if labeled is not None and methods.lam_reads_labels(cfg.method):
            self.label_sampler = distributed.shard(BatchSampler(
                labeled, cfg.labeled_batch_size, cfg.frame_stack, cfg.future_offset, cfg.seed + 1,
                keys=("obs", "future_obs"), with_replacement=True,
            ), "--labeled_batch_size")  # fmt: skip
            if cfg.label_norm == "variance":
                acts = torch.from_numpy(labeled.actions[labeled.valid_steps]).double()
                self.label_mean = acts.mean(0).float().to(runtime.device)
                self.label_std = acts.std(0).clamp_min(1e-6).float().to(runtime.device)
        self.total, self.warmup = schedule_lengths(cfg, self.sampler.updates_per_epoch)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, data).to(runtime.device)
        self.model = model.to(memory_format=torch.channels_last) if cfg.channels_last else model
        # DDP hooks forward(); the LAMs' entry point is loss(), so DDP wraps a view of it.
        self.ddp = maybe_compile(distributed.wrap(LossForward(self.model), runtime.device), cfg.compile)
        self.optimizer = make_optimizer(self.model, cfg.learning_rate, cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, self.warmup, self.total)
        self.augmenter = Augmenter(data.img_hw) if cfg.use_aug else None
        # The release's probe protocol: a linear layer on the detached latents of each
        # training batch (augmented, k in 1..K), trained alongside; its loss is the metric.
        self.probe: nn.Linear | None = None
        if cfg.online_probe:
            gen = torch.Generator().manual_seed(cfg.seed + 12345)  # leaves the model's RNG alone
            self.probe = nn.Linear(cfg.latent_dim, data.action_dim)
            with torch.no_grad():
                bound = 1.0 / cfg.latent_dim**0.5
                self.probe.weight.uniform_(-bound, bound, generator=gen)
                self.probe.bias.zero_()
            self.probe = self.probe.to(runtime.device)
            self.probe_optimizer = torch.optim.Adam(self.probe.parameters(), lr=cfg.online_probe_lr or cfg.learning_rate)
            self.action_variance = action_variance(data)

    def state_dict(self) -> dict[str, Any]:
        state = model_state(self.model, self.optimizer, self.scheduler)
        if self.probe is not None:
            state["probe"] = self.probe.state_dict()
            state["probe_optimizer"] = self.probe_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_model_state(state, self.model, self.optimizer, self.scheduler)
        if self.probe is not None and "probe" in state:
            self.probe.load_state_dict(state["probe"])
            self.probe_optimizer.load_state_dict(state["probe_optimizer"])

    def _input(self, stacks: torch.Tensor) -> torch.Tensor:
        # NCHW float32 even for a channels_last model: the encoders convert their
        # (concatenated, augmented) input once (laom.models.encoder.match_first_conv).
        return to_model_input(stacks, self.runtime.device)

    def step(
        self, update: int, grad_norm: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One optimisation step; returns the loss terms (and the grad norm if asked)."""
        cfg = self.cfg
        arrays = self.sampler.batch(update).arrays
        obs, next_obs, future_obs = (
            self._input(arrays[k]) for k in ("obs", "next_obs", "future_obs")
        )
        labeled = None
        if self.label_sampler is not None:
            lb = self.label_sampler.batch(update).arrays
            actions = lb["actions"].to(self.runtime.device)
            if self.label_mean is not None:
                actions = (actions - self.label_mean) / self.label_std
            labeled = (self._input(lb["obs"]), self._input(lb["future_obs"]), actions)
        augment = None
        if self.augmenter is not None:
            gen = step_generator(cfg.seed, update, stream=distributed.rng_stream(1))
            augmenter = self.augmenter

            def augment(x: torch.Tensor) -> torch.Tensor:
                return augmenter(x, gen)

        with self.runtime.autocast():
            loss, values = self.ddp(obs, next_obs, future_obs, labeled, augment=augment)
        norm = optimizer_step(
            loss, self.model, self.optimizer, self.scheduler, cfg.grad_clip, grad_norm
        )
        self.model.update_target()
        if self.probe is not None:
            values = {**values, **self._probe_step(arrays["actions"])}
        return values, norm

    def _probe_step(self, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.model.last_latent.float()
        target = actions.to(self.runtime.device)
        probe_loss = F.mse_loss(self.probe(z), target)
        self.probe_optimizer.zero_grad(set_to_none=True)
        probe_loss.backward()
        self.probe_optimizer.step()
        mse = probe_loss.detach()
        return {"online_probe_mse": mse, "online_probe_rel": mse / self.action_variance}


def load_training_data(
    cfg: LAMConfig,
) -> tuple[TrainingData, FrameData | None, FrameData, FrameData]:
    """(data, labelled data or None, probe train, probe test) with the cross-file checks."""
    data = open_training_data(cfg.data, cfg.stream, cfg.cache_mb, cfg.max_trajectories or None)
    labeled = None
    if methods.lam_reads_labels(cfg.method):
        labeled = load_frames(cfg.labeled)
        check_same_task(data, labeled, "--labeled")
        if len(labeled.valid_steps) == 0:
            raise LaomError(
                f"--labeled {labeled.path}: no transitions (trajectories need 2+ frames)"
            )
    # The LAM never sees actions, so it trains on all of --data; the probe must not.
    if cfg.eval_data:
        # The probe's sample of it, in memory (all of it when it is in memory already).
        probe_train = data.sample(np.random.default_rng([cfg.seed, 7]), cfg.probe_samples)
        probe_test = load_frames(cfg.eval_data)
        check_same_task(data, probe_test, "--eval-data")
    else:
        probe_train, probe_test = _split_holdout(
            data, cfg.holdout_fraction, cfg.seed, max(cfg.probe_samples, cfg.probe_eval_samples)
        )
    return data, labeled, probe_train, probe_test


def train_lam(cfg: LAMConfig) -> LAMSummary:
    """Train (or resume, or return the summary of a finished run in ``cfg.out``)."""
    validate(cfg)
    run = RunDir(cfg.out)
    run.prepare(cfg)
    if run.finished:
        return run.read_summary(LAMSummary)
    runtime = setup_runtime(cfg)
    data, labeled, probe_train, probe_test = load_training_data(cfg)
    signature = data_signature(data, cfg.frame_stack)
    trainer = LAMTrainer(cfg, data, labeled, runtime)
    model, total, per_epoch = trainer.model, trainer.total, trainer.sampler.updates_per_epoch

    loop = Loop(
        run, cfg, total, trainer, keep={"signature": signature, "config": config_to_dict(cfg)},
        mismatch=f"--data {data.path}:",
    )  # fmt: skip
    curve = ProbeCurve(run.path / PROBE_CURVE_FILE, cfg, total, cfg.batch_size)
    model.train()
    result = loop.run(
        trainer.step, batch_size=trainer.sampler.batch_size, desc=f"lam {cfg.method}",
        on_update=lambda done, log: curve(done, model, probe_train, probe_test, runtime, log),
        row=lambda done: {"epoch": done / per_epoch},
    )  # fmt: skip
    last, samples_per_s = result.last, result.samples_per_s

    probes: dict[str, Any] = {}
    if distributed.is_main():  # the others wait for rank 0's summary (write_summary)
        probes = run_probes(model, cfg, probe_train, probe_test, runtime)
        meta = LAMMeta(method=cfg.method, **signature, latent_dim=cfg.latent_dim, updates=total)
        save_model(run.path / "lam.pt", model, meta)
    summary = LAMSummary(
        method=cfg.method,
        updates=total,
        epochs=total / per_epoch,
        final=last,
        **probes,
        probe_test_set=cfg.eval_data or f"{cfg.holdout_fraction:.0%} held-out trajectories of --data",
        # the release's protocol: the online probe's windowed training loss at the end
        online_probe_mse=last.get("online_probe_mse"),
        online_probe_rel=last.get("online_probe_rel"),
        samples_per_s=samples_per_s,
        device=str(runtime.device),
        precision=str(runtime.amp_dtype or torch.float32).replace("torch.", ""),
        threads=torch.get_num_threads(),
        processes=distributed.info().world_size,
        malloc_mmap_threshold=os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        lam=str(run.path / "lam.pt"),
    )
    run.write_summary(summary)
    return summary
