"""Stage 2: latent behaviour cloning, plus the pixel-regression loop every later stage uses.

The policy pi(o_t) is the ResNet family (:class:`laom.models.policy.PixelPolicy`; scale
32 in the paper, whose feature map is mean-pooled over space into one linear layer; at
the CPU preset's scale 1 the whole map is flattened into an MLP head, with DrQ's random
shift) mapped to the frozen LAM's latent action z_t = IDM(o_t, o_{t+1}). Loss: MSE to
z_t, over every transition of the large unlabelled dataset. The same policy network
with an action-sized head is the BC baseline and the IDM baseline's policy (stage
idm-bc; ``laom/training/baselines.py``).

The LAM is frozen, so its labels are computed once, in batches
(:func:`laom.data.labelling.label_transitions`), and cached in the run
directory (``latents.npy``, float16 by default: 5M transitions x 8192 dims is 82 GB in
float16, so ``--cache_latents false`` labels each batch on the fly instead). Training
then never runs the LAM again, which on CPU roughly halves the cost of every update.

When --data records its distractors, the trained policy's predicted latents are probed
like the LAM's (:func:`policy_probes`): R² to the action and to each distractor's change.

:func:`fit` is the pixel regressor's update: sample a batch of frame stacks, MSE to
per-transition targets, AdamW + warmup/linear decay, run by the resumable loop every stage
shares (:class:`laom.training.loop.Loop`: checkpoints every ``checkpoint_every`` updates,
metrics, resume). A resumed run replays the same batches (the sampler is a function of
(seed, update)).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laom.data.access import TrainingData
from laom.data.labelling import label_transitions
from laom.data.sampler import Batch, BatchSampler, FrameData, load_frames, model_input
from laom.data.streaming import StreamingSampler, open_training_data
from laom.errors import LaomError, require
from laom.models.device import Runtime
from laom.models.meta import LAMMeta, PolicyMeta
from laom.models.policy import POOLINGS, PixelPolicy
from laom.models.probe import distractor_changes, distractor_probe_r2, fit_linear_probe
from laom.models.saving import save_model
from laom.outputs import atomic_path, atomic_write_text
from laom.training import distributed
from laom.training.config import RunConfig, TrainConfig, check_stage_inputs
from laom.training.loop import Loop, TrainState
from laom.training.optim import make_optimizer, make_scheduler, optimizer_step, schedule_lengths
from laom.training.options import check_fields, opt
from laom.training.rundir import RunDir
from laom.training.runtime import maybe_compile, setup_runtime, step_generator
from laom.training.summaries import FitSummary, LatentBCSummary

LATENT_POLICY_FILE = "latent_policy.pt"
# Where latent BC keeps its policy every --snapshot_every updates (latent_policy-UPDATE.pt).
SNAPSHOT_DIR = RunDir.SNAPSHOT_DIR
# The policy probes: transitions they fit on and are scored on, and the share of --data's
# trajectories held out for scoring (whole trajectories, so no frame is on both sides).
POLICY_PROBE_FIT, POLICY_PROBE_TEST, POLICY_PROBE_HOLDOUT = 10000, 5000, 0.2


@dataclass
class PolicyNetConfig(TrainConfig):
    """The pixel policy's network and input pipeline, one definition for every stage that
    trains one (latent BC, BC, BC-full, the IDM baseline's policy): they share one recipe
    (docs/acting_policies.md), so a change to it cannot reach one stage and miss another."""

    encoder_scale: int = opt(1, "encoder width multiplier (cost grows with its square)", ge=1)
    num_res_blocks: int = opt(2, "residual blocks per encoder stage", ge=0)
    encoder_channels: tuple[int, ...] = opt((16, 32, 32), "channels of each encoder stage, e.g. 16,32,32",
                                            item_ge=1, nonempty=True)  # fmt: skip
    pooling: str = opt("flatten", "policy read-out: flatten (the whole feature map) | mean (the release's)",
                       choices=POOLINGS)  # fmt: skip
    head_hidden: int = opt(256, "> 0: an MLP head with this hidden width; 0 = one linear layer", ge=0)
    relu_before_pool: bool = opt(True, "mean pooling: ReLU6 before averaging (ours) or after (false: the release)")
    shift_aug: int = opt(4, "DrQ random shift of every input by up to +-N px; 0 = off", ge=0)
    policy_ema: float = opt(0.0, "act with an EMA of the weights whose horizon 1/(1-decay) is this share of the "
                            "run's updates; 0 = the last weights", ge=0.0, le=1.0)  # fmt: skip
    channels_last: bool = opt(True, "channels-last memory layout (faster convolutions on CPU)")


@dataclass
class BCConfig(PolicyNetConfig):
    """Latent BC. Defaults are the CPU preset (laom/configs/cpu/bc.yaml)."""

    STAGE = "bc"
    lam: str = opt("", "LAM run directory (holds lam.pt)")
    data: str = opt("", "the large unlabelled dataset (actions are never read)")
    out: str = opt("", "run directory")
    max_trajectories: int = opt(0, "use only the first N trajectories of --data; 0 = all", ge=0)
    stream: bool = opt(False, "read --data through a bounded cache instead of loading it (larger than RAM)")
    cache_mb: float = opt(4096.0, "--stream: memory for trajectory data in MB", gt=0)
    batch_size: int = 64
    epochs: float = 13.0
    learning_rate: float = 3e-4
    warmup_epochs: float = 0.1
    checkpoint_every: int = 200
    min_updates: int = opt(0, "train at least this many updates, whatever the dataset size", ge=0)
    use_aug: bool = opt(False, "LAOM's augmentation chain (the paper's latent BC uses none)")
    cache_latents: bool = opt(True, "label the dataset once; false: label every batch on the fly")
    cache_dtype: str = opt("float16", "dtype of the cached latents", choices=("float16", "float32"))
    label_batch_size: int = opt(256, "batch for labelling the dataset with the LAM", ge=1)
    snapshot_every: int = opt(0, "keep the latent policy every N updates in RUN/snapshots, for the acting "
                              "policy's return curve (the decoder's --snapshot_episodes); 0 = none", ge=0)  # fmt: skip


# --------------------------------------------------------------------------- shared helpers


def env_attrs(data: FrameData) -> dict[str, Any]:
    """What evaluation needs to rebuild the environment a dataset was collected in."""
    attrs = data.attrs
    return {
        "difficulty": str(attrs.get("difficulty", "scale_easy_video_hard")),
        "dynamic": bool(attrs.get("dynamic", True)),
        "split": str(attrs.get("split", "train")),
        "backgrounds": str(attrs.get("backgrounds", "procedural")),
    }


def signature_of(data: FrameData, frame_stack: int) -> dict[str, Any]:
    domain, task = data.task_id()
    return {
        "img_hw": data.img_hw, "frame_stack": frame_stack, "action_dim": data.action_dim,
        "domain_name": domain, "task_name": task,
    }  # fmt: skip


def check_data(expected: LAMMeta | PolicyMeta, data: FrameData, what: str, owner: str = "the checkpoint") -> None:
    """LaomError unless ``data`` is the task, image size and action size a model was
    trained on (what ``expected``, its meta, does not record is not compared)."""
    task = f"{expected.domain_name or ''}-{expected.task_name or ''}"
    got_task = "-".join(data.task_id())
    if task.strip("-") and got_task.strip("-") and task != got_task:
        raise LaomError(f"{what} {data.path} is {got_task} but {owner} was trained on {task}")
    if expected.img_hw is not None and expected.img_hw != data.img_hw:
        raise LaomError(f"{what} {data.path}: image size {data.img_hw} does not match {owner}'s {expected.img_hw}")
    if expected.action_dim is not None and expected.action_dim != data.action_dim:
        raise LaomError(
            f"{what} {data.path}: action size {data.action_dim} does not match {owner}'s {expected.action_dim}"
        )


def load_labeled(
    path: str, reference: TrainingData | LAMMeta | PolicyMeta | None, what: str = "--labeled"
) -> FrameData:
    """The small labelled file, checked against the large dataset (or a model's meta;
    None: a stage that reads no other file, the IDM baseline's IDM)."""
    labeled = load_frames(path)
    if reference is not None:
        is_data = not isinstance(reference, (LAMMeta, PolicyMeta))  # FrameData or StreamingData
        expected = PolicyMeta(**signature_of(reference, 1)) if is_data else reference
        check_data(expected, labeled, what, "--data" if is_data else "the checkpoint")
    if len(labeled.valid_steps) == 0:
        raise LaomError(f"{what} {path}: no transitions (trajectories need 2+ frames)")
    return labeled


def require_run(path: str, flag: str, artifact: str) -> Path:
    """The artifact file of a finished run directory, or a one-line error saying what is wrong."""
    run = Path(path)
    require(bool(path), f"{flag} is required")
    require(run.is_dir(), f"{flag} {path}: no such run directory")
    file = run / artifact
    if not file.is_file():
        state = "unfinished (no summary.json; re-run its command to resume)" if not (run / "summary.json").is_file() else "not the right kind of run"
        raise LaomError(f"{flag} {path}: no {artifact} ({state})")
    return file


def file_identity(path: str | Path) -> dict[str, Any]:
    """A dataset by its content, other files (weights) by (path, size, mtime):
    laom.data.identity says why."""
    from laom.data.identity import file_identity as identity

    return identity(path)


def make_sampler(
    data: TrainingData, batch_size: int, frame_stack: int, seed: int, keys: tuple[str, ...] = ("obs",),
    with_replacement: bool | None = None,
) -> BatchSampler | StreamingSampler:  # fmt: skip
    """Epoch-ordered batches, or draws with replacement when the data is smaller than a batch."""
    return data.sampler(batch_size, frame_stack, 1, seed, keys, with_replacement=with_replacement)


def schedule(cfg: TrainConfig, sampler: BatchSampler, min_updates: int = 0) -> tuple[int, int]:
    """(total, warmup) updates: ``epochs`` over the data, but at least ``min_updates``."""
    total, warmup = schedule_lengths(cfg, sampler.updates_per_epoch)
    if cfg.total_updates <= 0 and total < min_updates:
        warmup = round(warmup * min_updates / total)
        total = min_updates
    return total, warmup


def cached_labels(
    path: Path, source: dict[str, Any], shape: tuple[int, int], dtype: str,
    compute: Callable[[np.ndarray], None],
) -> np.ndarray:  # fmt: skip
    """A [N, D] label array cached at ``path`` (memory-mapped), recomputed when ``source``
    (the identity of the labelling model) changed. Written under a temporary name and
    renamed, so a killed labelling pass never leaves a cache that looks complete."""
    meta_path = path.with_suffix(".json")
    meta = {"source": source, "shape": list(shape), "dtype": dtype}
    # Under torchrun rank 0 alone decides and labels; every rank passes the barrier once.
    # (A rank that checked the cache itself could find rank 0's finished file, skip the
    # barrier and leave rank 0 waiting at it for ever.)
    try:
        if distributed.is_main() and not (
            path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == meta
        ):
            _write_labels(path, meta_path, meta, shape, dtype, compute)
    finally:
        distributed.barrier()
    return np.load(path, mmap_mode="r")


def _write_labels(
    path: Path, meta_path: Path, meta: dict[str, Any], shape: tuple[int, int], dtype: str,
    compute: Callable[[np.ndarray], None],
) -> None:  # fmt: skip
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=shape)
        compute(array)
        array.flush()
        del array
    atomic_write_text(meta_path, json.dumps(meta) + "\n")


def fit(
    model: nn.Module,
    sampler: BatchSampler,
    targets: Callable[[Batch], torch.Tensor],
    cfg: RunConfig,
    run: RunDir,
    runtime: Runtime,
    *,
    total: int,
    warmup: int,
    learning_rate: float,
    inputs: tuple[str, ...] = ("obs",),
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    channels_last: bool = False,
    desc: str = "train",
    extra: dict[str, Any] | None = None,
    on_update: Callable[[int, nn.Module], None] | None = None,
    ema_share: float = 0.0,
) -> FitSummary:
    """Regress ``targets(batch)`` from ``model(*batch[inputs])`` with MSE; resumable.

    ``extra`` is stored in every checkpoint (e.g. the data signature, checked on resume).
    ``on_update(done, model)`` runs after every update (and once at the resumed update:
    a learning-curve point cut short by a kill is made up). Returns the last logged
    loss, the update count and the throughput of this process.

    ``ema_share > 0`` keeps an exponential moving average of the weights with a horizon
    of that share of ``total`` (a rule, so the demo and the long runs average over the
    same part of their run) and leaves it in ``model`` at the end: a policy is judged by
    the states its own actions lead to, and the last step's weights carry that step's
    noise into every action. ``on_update`` sees the average, as it is what gets saved.
    """
    optimizer = make_optimizer(model, learning_rate, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, warmup, total)
    averaged = None
    if ema_share > 0:
        decay = 1.0 - 1.0 / max(1.0, ema_share * total)
        averaged = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
        )
    loop = Loop(
        run, cfg, total, TrainState(model, optimizer, scheduler), keep=extra,
        extras={"ema": averaged} if averaged is not None else None,
    )  # fmt: skip
    acting = averaged.module if averaged is not None else model
    sampler = distributed.shard(sampler)  # this rank's slice of each global batch
    ddp = maybe_compile(distributed.wrap(model, runtime.device), getattr(cfg, "compile", False))

    def step(update: int, want_norm: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        batch = sampler.batch(update)
        xs = [model_input(batch.arrays[k], runtime.device, channels_last) for k in inputs]
        if augment is not None:  # each input gets its own draw
            gen = step_generator(cfg.seed, update, stream=distributed.rng_stream(1))
            xs = [augment(x, gen) for x in xs]
        y = targets(batch).to(runtime.device, torch.float32)
        with runtime.autocast():
            pred = ddp(*xs)
        loss = F.mse_loss(pred.float(), y)  # the whole objective of every pixel regressor
        grad_norm = optimizer_step(loss, model, optimizer, scheduler, cfg.grad_clip, want_norm)
        if averaged is not None:
            averaged.update_parameters(model)
        return {"loss": loss}, grad_norm

    model.train()
    result = loop.run(
        step, batch_size=sampler.batch_size, desc=desc,
        on_update=None if on_update is None else lambda done, _log: on_update(done, acting),
    )  # fmt: skip
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    model.eval()
    return result.summary()


def make_augment(
    use_aug: bool, img_hw: int, shift_aug: int = 0
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """LAOM's chain of eight warps (``use_aug``), DrQ's random shift, or nothing."""
    from laom.models.augment import Augmenter, RandomShift

    if use_aug:
        return Augmenter(img_hw)
    return RandomShift(shift_aug) if shift_aug > 0 else None


def build_policy(cfg: Any, obs_shape: Sequence[int], out_dim: int, device: torch.device) -> PixelPolicy:
    """The acting / latent policy a BC-style config describes (seeded by ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    policy = PixelPolicy(
        obs_shape, out_dim, cfg.encoder_scale, cfg.num_res_blocks, cfg.encoder_channels,
        pooling=cfg.pooling, hidden_dim=cfg.head_hidden, relu_before_pool=cfg.relu_before_pool,
    ).to(device)  # fmt: skip
    return policy.to(memory_format=torch.channels_last) if cfg.channels_last else policy


def validate_policy_fields(cfg: Any) -> None:
    require(
        not (cfg.use_aug and cfg.shift_aug),
        f"--use_aug true and --shift_aug {cfg.shift_aug}: choose one augmentation (--shift_aug 0 for LAOM's warps)",
    )


def target_variance(targets: np.ndarray, rows: np.ndarray, max_rows: int = 20000) -> float:
    """Mean per-dimension variance of the targets: the MSE of predicting their mean, the
    yardstick for the regression loss."""
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(0).choice(rows, max_rows, replace=False))
    return float(np.asarray(targets[rows], dtype=np.float64).var(axis=0).mean())


def validate_common(cfg: RunConfig) -> None:
    """Every field's range (their declarations) and --out, before anything is written."""
    check_fields(cfg)
    require(bool(getattr(cfg, "out", "")), "--out is required")
    check_stage_inputs(cfg)


# --------------------------------------------------------------------------- latent BC


def train_bc(cfg: BCConfig) -> LatentBCSummary:
    """Train (or resume, or return the summary of a finished run in ``cfg.out``)."""
    from laom.models import load_lam

    validate_common(cfg)
    validate_policy_fields(cfg)
    lam_file = require_run(cfg.lam, "--lam", "lam.pt")
    require(bool(cfg.data), "--data is required")
    run = RunDir(cfg.out)
    run.prepare(cfg)
    if run.finished:
        return run.read_summary(LatentBCSummary)
    runtime = setup_runtime(cfg)

    lam, lam_meta = load_lam(lam_file, map_location=runtime.device)
    lam.requires_grad_(False)
    frame_stack = int(lam_meta.frame_stack)
    data = open_training_data(cfg.data, cfg.stream, cfg.cache_mb, cfg.max_trajectories or None)
    check_data(lam_meta, data, "--data", "the LAM")
    latent_dim = int(lam_meta.latent_dim or lam.latent_dim)

    def label(obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return lam.latent_action(obs, next_obs)

    keys: tuple[str, ...] = ("obs",)
    if cfg.cache_latents:
        latents = cached_labels(
            run.path / "latents.npy", file_identity(lam_file), (data.num_frames, latent_dim), cfg.cache_dtype,
            lambda out: label_transitions(label, data, frame_stack, out, runtime, cfg.label_batch_size, progress=cfg.progress, desc="label with LAM"),
        )  # fmt: skip
        variance = target_variance(latents, data.valid_steps)

        def targets(batch: Batch) -> torch.Tensor:
            return torch.from_numpy(np.asarray(latents[batch.steps], dtype=np.float32))
    else:  # label every batch with the frozen LAM (datasets too large to cache)
        keys, variance = ("obs", "next_obs"), float("nan")

        @torch.no_grad()
        def targets(batch: Batch) -> torch.Tensor:
            obs, nxt = (model_input(batch.arrays[k], runtime.device, False) for k in ("obs", "next_obs"))
            with runtime.autocast():
                return label(obs, nxt).float()

    sampler = make_sampler(data, cfg.batch_size, frame_stack, cfg.seed, keys)
    total, warmup = schedule(cfg, sampler, cfg.min_updates)
    obs_shape = (3 * frame_stack, data.img_hw, data.img_hw)
    policy = build_policy(cfg, obs_shape, latent_dim, runtime.device)
    meta = PolicyMeta(
        **signature_of(data, frame_stack), **env_attrs(data), method=str(lam_meta.method or ""),
        latent_dim=latent_dim, outputs="latent", data=str(Path(cfg.data).resolve()),
    )  # fmt: skip
    snapshots = Snapshots(run.path / SNAPSHOT_DIR, cfg.snapshot_every, total, meta)
    result = fit(
        policy, sampler, targets, cfg, run, runtime, total=total, warmup=warmup, learning_rate=cfg.learning_rate,
        augment=make_augment(cfg.use_aug, data.img_hw, cfg.shift_aug), channels_last=cfg.channels_last,
        desc=f"latent bc ({meta.method})", extra={"signature": meta.to_json()}, ema_share=cfg.policy_ema,
        on_update=snapshots if snapshots.enabled else None,
    )  # fmt: skip
    if distributed.is_main():
        save_model(run.path / LATENT_POLICY_FILE, policy, meta)
    probes = policy_probes(policy, data, frame_stack, runtime, cfg.seed) if distributed.is_main() else {}
    summary = LatentBCSummary(
        method=meta.method, final_loss=result.final_loss, updates=result.updates,
        samples_per_s=result.samples_per_s, epochs=total / sampler.updates_per_epoch, latent_dim=latent_dim,
        latent_variance=variance,
        relative_loss=result.final_loss / variance if variance and variance > 0 else None,
        **probes, device=str(runtime.device), latent_policy=str(run.path / LATENT_POLICY_FILE),
    )  # fmt: skip
    run.write_summary(summary)
    return summary


class Snapshots:
    """Keeps the latent policy every ``every`` updates before the last (the last is
    latent_policy.pt itself), as the acting policy would be at that point.

    Why: latent BC's return can only be measured through a decoder, which is trained per
    labelled budget after latent BC ends, so a return curve cannot be taken during
    training as BC's is (LearningCurve). The decoder stage trains a decoder for each
    snapshot instead (``--snapshot_episodes``). With an EMA the snapshot is the average,
    the weights that would be saved.
    """

    def __init__(self, folder: Path, every: int, total: int, meta: PolicyMeta) -> None:
        self.folder, self.every, self.total, self.meta = folder, every, total, meta
        self.enabled = every > 0 and distributed.is_main()

    def __call__(self, update: int, model: nn.Module) -> None:
        if not self.enabled or update <= 0 or update >= self.total or update % self.every:
            return
        # Written even where one exists: a stage trained again in place (its LAM changed)
        # replaces every snapshot of the earlier training as it passes its update.
        self.folder.mkdir(parents=True, exist_ok=True)
        save_model(self.folder / snapshot_name(update), model, self.meta)


def snapshot_name(update: int) -> str:
    return f"latent_policy-{update:06d}.pt"


def read_snapshots(run: str | Path) -> list[tuple[int, Path]]:
    """(update, file) of every snapshot a latent BC run kept, in update order."""
    found = []
    for path in (Path(run) / SNAPSHOT_DIR).glob("latent_policy-*.pt"):
        tail = path.stem.rpartition("-")[2]
        if tail.isdigit():
            found.append((int(tail), path))
    return sorted(found)


# --------------------------------------------------------------------------- policy probes


@torch.no_grad()
def policy_probes(
    policy: nn.Module, data: TrainingData, frame_stack: int, runtime: Runtime, seed: int,
    ridge: float = 1e-4,
) -> dict[str, Any]:  # fmt: skip
    """What the latent-BC policy's predicted latents z^(o_t) encode, as the LAM's latents are
    probed: R² of closed-form linear probes to the action a_t and to each distractor's
    change from o_t to o_{t+1}, fitted on trajectories of --data and scored on others.

    The policy sees only o_t's frame stack, so a distractor R² well above 0 means it
    learnt to predict distractor motion from the past frames because its LAM put that
    motion in the latents. Both values are None (and nothing is computed) unless --data
    records its distractors: the action R² alone is what the offline action MSE of the
    acting policy already measures, after the decoder.
    """
    empty: dict[str, Any] = {"policy_action_probe_r2": None, "policy_distractor_probe_r2": None}
    if data.num_trajectories < 2 or not data.records_distractors():
        return empty
    rng = np.random.default_rng([seed, 13])
    sample = data.sample(rng, POLICY_PROBE_FIT + POLICY_PROBE_TEST)  # whole trajectories, in memory
    if sample.distractors is None or sample.num_trajectories < 2:
        return empty
    order = rng.permutation(sample.num_trajectories)
    held = order[: min(sample.num_trajectories - 1, max(1, round(POLICY_PROBE_HOLDOUT * sample.num_trajectories)))]
    steps = sample.valid_steps
    is_held = np.isin(sample.traj_index[steps], held)
    pools = ((steps[~is_held], POLICY_PROBE_FIT), (steps[is_held], POLICY_PROBE_TEST))
    if min(len(pool) for pool, _ in pools) < 2:
        return empty
    sides = []
    for pool, n in pools:
        chosen = np.sort(rng.choice(pool, min(n, len(pool)), replace=False))
        sides.append((_predict_latents(policy, sample, frame_stack, chosen, runtime), chosen))
    (z_fit, fit_steps), (z_test, test_steps) = sides
    actions = [torch.from_numpy(sample.actions[s]) for s in (fit_steps, test_steps)]
    act = fit_linear_probe(z_fit, actions[0], z_test, actions[1], ridge)
    return {
        "policy_action_probe_r2": act.r2,
        "policy_distractor_probe_r2": distractor_probe_r2(
            z_fit, distractor_changes(sample.distractors, fit_steps), z_test,
            distractor_changes(sample.distractors, test_steps), ridge,
        ),
    }  # fmt: skip


def _predict_latents(
    policy: nn.Module, data: FrameData, frame_stack: int, steps: np.ndarray, runtime: Runtime, batch_size: int = 256
) -> torch.Tensor:  # fmt: skip
    """The policy's outputs for the frame stacks ending at ``steps`` (no augmentation)."""
    sampler = BatchSampler(data, min(batch_size, len(steps)), frame_stack, 1, 0, keys=("obs",))
    was_training = policy.training
    policy.eval()
    out = []
    for i in range(0, len(steps), sampler.batch_size):
        chunk = steps[i : i + sampler.batch_size]
        obs = model_input(sampler.gather(chunk, np.ones_like(chunk))["obs"], runtime.device, False)
        with runtime.autocast():
            out.append(policy(obs).float().cpu())
    policy.train(was_training)
    return torch.cat(out)
