"""The paper's two baselines that use the labelled subset directly.

**BC** (``laom train bc-baseline``): the pixel policy of latent BC with an action-sized
head, regressing the true actions of the given file with MSE. On the labelled subset
it is the "BC" baseline; on the whole dataset it is "BC-full", whose return is the
normaliser of the paper's normalised returns.

**IDM**, two stages as latent BC builds on its LAM: ``laom train idm`` trains a
supervised inverse dynamics model IDM(o_t, o_{t+1}) -> a_t on the labelled subset (10k
updates of batch 512 in the paper, drawn with replacement); ``laom train idm-bc`` labels
every transition of the large dataset with the IDM's pseudo-actions (cached in its run
as ``pseudo_actions.npy``) and trains the BC policy on those. It is what the latent
action methods compete with: the same labels, used to label the video directly. As two
stages, the IDM is trained once however its policy is changed, and each resumes alone.

IDM model (``--idm_arch``): ``stacked``, one ResNet over the two frame stacks
concatenated along channels (scale 12 in the paper), flattened, ReLU6, a hidden layer
(1024), ReLU6, linear to the action; or ``shared``, the release's: one ResNet embeds
each stack and a LAOM-style MLP head maps the pair to the action.

Before the split the IDM baseline was one stage ``idm`` whose run held both (RUN/idm/,
RUN/bc/, RUN/policy.pt). Such a run's policy still evaluates (``laom evaluate
--policy RUN``); the stages here refuse its folder with a message that says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from laom.data.labelling import label_transitions
from laom.data.sampler import Batch, FrameData
from laom.data.streaming import open_training_data
from laom.errors import LaomError, require
from laom.models.device import Runtime
from laom.models.idm import IDM_ARCHS, ActionIDM
from laom.models.meta import PolicyMeta
from laom.models.policy import ActingPolicy, PixelPolicy
from laom.models.saving import IDM_FILE, load_model, save_model
from laom.training import distributed
from laom.training.bc import (
    PolicyNetConfig,
    build_policy,
    cached_labels,
    check_data,
    env_attrs,
    file_identity,
    fit,
    load_labeled,
    make_augment,
    make_sampler,
    require_run,
    schedule,
    signature_of,
    validate_common,
    validate_policy_fields,
)
from laom.training.config import RunConfig
from laom.training.options import opt
from laom.training.rundir import RunDir
from laom.training.runtime import setup_runtime
from laom.training.summaries import (
    BCBaselineSummary,
    FitSummary,
    IDMBCSummary,
    IDMSummary,
    OfflineScores,
)


@dataclass
class ActionPolicyConfig(PolicyNetConfig):
    """A pixel policy regressing actions over one file: the true ones (BC, BC-full) or
    the IDM's pseudo-actions (the IDM baseline's policy). One declaration for both, as
    :class:`~laom.training.bc.PolicyNetConfig` is for their network."""

    data: str = opt("", "the labelled subset (BC) or the full dataset (BC-full)")
    eval_data: str = opt("", "optional: offline action MSE on this file")
    out: str = opt("", "run directory")
    max_trajectories: int = opt(0, "use only the first N trajectories of --data; 0 = all", ge=0)
    stream: bool = opt(False, "read --data through a bounded cache instead of loading it (larger than RAM)")
    cache_mb: float = opt(4096.0, "--stream: memory for trajectory data in MB", gt=0)
    batch_size: int = 64
    epochs: float = 13.0
    learning_rate: float = 3e-4
    warmup_epochs: float = 0.1
    checkpoint_every: int = 200
    # A 2-trajectory subset is ~4 batches of 512 per epoch: 10 epochs would be 40
    # updates. This floor (our choice; the paper does not say) keeps small subsets trained.
    min_updates: int = opt(500, "train at least this many updates, whatever the dataset size", ge=0)
    use_aug: bool = opt(False, "LAOM's eight-warp augmentation chain")
    eval_samples: int = opt(20000, "transitions of --eval-data for the offline action MSE", ge=1)
    # learning curve (RUN/curve.jsonl): offline MSE on --eval-data and online return
    curve_every: int = opt(0, "updates between learning-curve points in RUN/curve.jsonl; 0 = no curve", ge=0)
    curve_episodes: int = opt(5, "online episodes per curve point; 0 = offline MSE only", ge=0)
    curve_workers: int = opt(2, "evaluation worker processes per curve point", ge=0)


@dataclass
class BCBaselineConfig(ActionPolicyConfig):
    """BC on true actions. Defaults are the CPU preset (laom/configs/cpu/bc-baseline.yaml)."""

    STAGE = "bc-baseline"
    frame_stack: int = opt(3, "frames per observation stack", ge=1)


@dataclass
class IDMBCConfig(ActionPolicyConfig):
    """The IDM baseline's policy: BC on the pseudo-actions an IDM run gives --data. Its
    frame stack is the IDM's (from idm.pt), as latent BC's is its LAM's. Defaults are the
    CPU preset (laom/configs/cpu/idm-bc.yaml)."""

    STAGE = "idm-bc"
    idm: str = opt("", "IDM run directory (holds idm.pt: laom train idm)")
    data: str = opt("", "large dataset the IDM labels and the policy learns from")
    min_updates: int = 0
    label_batch_size: int = opt(256, "batch for pseudo-labelling --data with the IDM", ge=1)


@dataclass
class IDMConfig(RunConfig):
    """The IDM baseline's inverse dynamics model on the labelled subset. Its length is
    ``idm_updates`` (no epochs: a labelled subset of 2 trajectories and one of 128 get the
    same IDM training). The ``idm_`` names are those of the one-stage IDM baseline, so
    ``--idm.idm_updates`` reads as before. Defaults are the CPU preset
    (laom/configs/cpu/idm.yaml)."""

    STAGE = "idm"
    labeled: str = opt("", "small labelled subset the IDM learns from")
    out: str = opt("", "run directory")
    frame_stack: int = opt(3, "frames per observation stack (the policy's too: idm-bc reads it from idm.pt)", ge=1)
    encoder_channels: tuple[int, ...] = opt((16, 32, 32), "channels of each IDM encoder stage, e.g. 16,32,32",
                                            item_ge=1, nonempty=True)  # fmt: skip
    checkpoint_every: int = 200
    idm_updates: int = opt(1000, "IDM training updates", ge=1)
    idm_batch_size: int = opt(64, "IDM samples per update", ge=1)
    idm_learning_rate: float = opt(3e-4, "IDM AdamW learning rate", gt=0)
    idm_warmup_updates: int = opt(50, "IDM linear warmup, in updates", ge=0)
    idm_encoder_scale: int = opt(1, "IDM encoder width multiplier", ge=1)
    idm_num_res_blocks: int = opt(2, "IDM residual blocks per encoder stage", ge=0)
    idm_head_dim: int = opt(256, "IDM MLP head width", ge=1)
    idm_use_aug: bool = opt(False, "LAOM's augmentation chain on the IDM's inputs")
    idm_arch: str = opt("stacked", "stacked: one ResNet over both stacks | shared: the release's (shared encoder "
                        "+ MLP head)", choices=IDM_ARCHS)  # fmt: skip


# What `laom train idm` and an idm.yaml held before the split and idm-bc holds now: each
# fails naming idm-bc rather than reading as a typo.
IDMConfig.MOVED = {
    f.name: IDMBCConfig.STAGE for f in dataclasses.fields(IDMBCConfig)
    if f.name not in {g.name for g in dataclasses.fields(IDMConfig)}
}


def _policy_meta(data: FrameData, path: str, method: str, frame_stack: int) -> PolicyMeta:
    return PolicyMeta(
        **signature_of(data, frame_stack), **env_attrs(data), method=method, outputs="action",
        data=str(Path(path).resolve()),
    )  # fmt: skip


def _train_policy(
    data: FrameData, targets: Any, cfg: ActionPolicyConfig, run: RunDir, runtime: Runtime, meta: PolicyMeta,
    reference_mean: np.ndarray | None = None,
) -> tuple[PixelPolicy, FitSummary, int]:  # fmt: skip
    """The BC half both baselines share: pixel policy -> action, MSE to ``targets``, on
    stacks of ``meta.frame_stack`` frames."""
    from laom.training.curve import LearningCurve

    frame_stack = int(meta.frame_stack)
    sampler = make_sampler(data, cfg.batch_size, frame_stack, cfg.seed)
    total, warmup = schedule(cfg, sampler, cfg.min_updates)
    curve = None
    if cfg.curve_every > 0:
        eval_data = load_labeled(cfg.eval_data, meta, "--eval-data") if cfg.eval_data else None
        curve = LearningCurve(
            run.path, cfg.curve_every, total, meta, eval_data=eval_data, episodes=cfg.curve_episodes,
            workers=cfg.curve_workers, reference_mean=reference_mean,
        )  # fmt: skip
    obs_shape = (3 * frame_stack, data.img_hw, data.img_hw)
    policy = build_policy(cfg, obs_shape, data.action_dim, runtime.device)
    result = fit(
        policy, sampler, targets, cfg, run, runtime, total=total, warmup=warmup, learning_rate=cfg.learning_rate,
        augment=make_augment(cfg.use_aug, data.img_hw, cfg.shift_aug), channels_last=cfg.channels_last,
        desc=f"bc ({meta.method})", extra={"signature": meta.to_json()}, on_update=curve, ema_share=cfg.policy_ema,
    )  # fmt: skip
    return policy, result, sampler.updates_per_epoch


def _offline(policy: PixelPolicy, meta: PolicyMeta, cfg: ActionPolicyConfig, reference_mean: np.ndarray) -> OfflineScores:
    from laom.evaluation.policy import offline_action_mse

    eval_data = load_labeled(cfg.eval_data, meta, "--eval-data")
    acting = ActingPolicy(policy, None, meta).eval()
    return OfflineScores.from_json(
        offline_action_mse(acting, eval_data, cfg.eval_samples, reference_mean=reference_mean)
    )


def _idm_mse(idm: ActionIDM, cfg: IDMBCConfig, meta: PolicyMeta, runtime: Runtime) -> float:
    """The IDM's own action MSE on --eval-data: how much of the BC policy's error is
    inherited from its pseudo-labels. Measured here, beside the policy's, where both
    models and --eval-data are at hand."""
    eval_data = load_labeled(cfg.eval_data, meta, "--eval-data")
    if len(eval_data.valid_steps) > cfg.eval_samples:
        keep = np.random.default_rng([cfg.seed, 17]).permutation(eval_data.num_trajectories)
        eval_data = eval_data.subset(sorted(keep[: max(1, cfg.eval_samples * eval_data.num_trajectories // len(eval_data.valid_steps))]))
    pred = np.zeros((eval_data.num_frames, eval_data.action_dim), np.float32)
    label_transitions(idm, eval_data, int(meta.frame_stack), pred, runtime, cfg.label_batch_size, progress=False)
    steps = eval_data.valid_steps
    return float(((pred[steps].astype(np.float64) - eval_data.actions[steps]) ** 2).mean())


def _validate_baseline(cfg: ActionPolicyConfig) -> None:
    validate_common(cfg)
    validate_policy_fields(cfg)
    require(bool(cfg.data), "--data is required")
    require(
        cfg.curve_every == 0 or cfg.curve_episodes > 0 or bool(cfg.eval_data),
        "--curve_every needs --curve_episodes > 0 or --eval-data (a curve of nothing)",
    )
    if cfg.curve_every > 0 and cfg.curve_episodes > 0:  # online episodes need the task's environment
        from laom.data.format import open_dataset
        from laom.envs.tasks import parse_task

        with open_dataset(cfg.data) as reader:
            task = f"{reader.attrs.get('domain_name', '?')}-{reader.attrs.get('task_name', '?')}"
        try:
            parse_task(task)
        except LaomError as exc:
            raise LaomError(f"--curve_episodes {cfg.curve_episodes}: {exc}; use --curve_episodes 0") from None


def train_bc_baseline(cfg: BCBaselineConfig) -> BCBaselineSummary:
    """Train (or resume, or return the summary of a finished run in ``cfg.out``)."""
    _validate_baseline(cfg)
    run = RunDir(cfg.out)
    run.prepare(cfg)
    if run.finished:
        return run.read_summary(BCBaselineSummary)
    runtime = setup_runtime(cfg)
    data = open_training_data(cfg.data, cfg.stream, cfg.cache_mb, cfg.max_trajectories or None)
    meta = _policy_meta(data, cfg.data, "bc", cfg.frame_stack)

    def targets(batch: Batch) -> torch.Tensor:
        return batch.arrays["actions"]

    train_actions = data.all_actions()[data.valid_steps]
    policy, result, per_epoch = _train_policy(data, targets, cfg, run, runtime, meta, train_actions.mean(0))
    if distributed.is_main():
        save_model(run.path / "policy.pt", policy, meta)
    summary = BCBaselineSummary(
        final_loss=result.final_loss, updates=result.updates, samples_per_s=result.samples_per_s,
        epochs=result.updates / per_epoch, trajectories=data.num_trajectories, transitions=len(data.valid_steps),
        device=str(runtime.device), policy=str(run.path / "policy.pt"),
    )  # fmt: skip
    if cfg.eval_data and distributed.is_main():
        summary.offline = _offline(policy, meta, cfg, train_actions.mean(0))
    run.write_summary(summary)
    return summary


def _refuse_one_stage_run(path: str, flag: str) -> None:
    """A one-stage IDM baseline run of an earlier laom (RUN/idm/ and RUN/bc/ inside) is
    neither stage's folder: say what it is and what still works on it."""
    run = Path(path)
    if (run / "config.yaml").is_file() and (run / "idm").is_dir():
        raise LaomError(
            f"{flag} {path} is an IDM baseline run of an earlier laom (IDM and policy in one folder): its policy "
            f"still evaluates (laom evaluate --policy {path}); train the two stages anew (laom train idm, then idm-bc)"
        )


def train_idm(cfg: IDMConfig) -> IDMSummary:
    """Train (or resume, or return the summary of a finished run in ``cfg.out``) the IDM
    on the labelled subset: RUN/idm.pt, its checkpoints and metrics."""
    validate_common(cfg)
    require(bool(cfg.labeled), "--labeled is required")
    _refuse_one_stage_run(cfg.out, "--out")
    run = RunDir(cfg.out)
    run.prepare(cfg)
    if run.finished:
        return run.read_summary(IDMSummary)
    runtime = setup_runtime(cfg)
    labeled = load_labeled(cfg.labeled, None)
    meta = _policy_meta(labeled, cfg.labeled, "idm", cfg.frame_stack)
    obs_shape = (3 * cfg.frame_stack, labeled.img_hw, labeled.img_hw)
    torch.manual_seed(cfg.seed)
    idm = ActionIDM(
        obs_shape, labeled.action_dim, cfg.idm_encoder_scale, cfg.idm_num_res_blocks, cfg.encoder_channels,
        cfg.idm_head_dim, arch=cfg.idm_arch,
    ).to(runtime.device)  # fmt: skip
    sampler = make_sampler(labeled, cfg.idm_batch_size, cfg.frame_stack, cfg.seed, ("obs", "next_obs"), with_replacement=True)

    def actions(batch: Batch) -> torch.Tensor:
        return batch.arrays["actions"]

    result = fit(
        idm, sampler, actions, cfg, run, runtime, total=cfg.idm_updates,
        warmup=min(cfg.idm_warmup_updates, cfg.idm_updates), learning_rate=cfg.idm_learning_rate,
        inputs=("obs", "next_obs"), augment=make_augment(cfg.idm_use_aug, labeled.img_hw), desc="idm",
        extra={"signature": meta.to_json()},
    )  # fmt: skip
    if distributed.is_main():
        save_model(run.path / IDM_FILE, idm, meta)
    steps = labeled.valid_steps
    summary = IDMSummary(
        final_loss=result.final_loss, updates=result.updates, samples_per_s=result.samples_per_s,
        labeled_trajectories=labeled.num_trajectories, labeled_transitions=len(steps),
        action_mean=[float(x) for x in labeled.actions[steps].mean(0)], device=str(runtime.device),
        idm=str(run.path / IDM_FILE),
    )  # fmt: skip
    run.write_summary(summary)
    return summary


def train_idm_bc(cfg: IDMBCConfig) -> IDMBCSummary:
    """Train (or resume, or return the summary of a finished run in ``cfg.out``) the IDM
    baseline's policy. Two phases, each resumable: RUN/pseudo_actions.npy (--data
    labelled by the IDM), then the policy (RUN/policy.pt)."""
    _validate_baseline(cfg)
    _refuse_one_stage_run(cfg.idm, "--idm")
    idm_file = require_run(cfg.idm, "--idm", IDM_FILE)
    idm_run = RunDir(cfg.idm)
    require(idm_run.finished, f"--idm {cfg.idm}: unfinished (no summary.json; re-run its command to resume)")
    made = idm_run.read_summary(IDMSummary)
    require(
        made.action_mean is not None,
        f"--idm {cfg.idm}: not an IDM run of this laom (its summary has no action_mean); train one with laom train idm",
    )
    _refuse_one_stage_run(cfg.out, "--out")
    run = RunDir(cfg.out)
    run.prepare(cfg)
    if run.finished:
        return run.read_summary(IDMBCSummary)
    runtime = setup_runtime(cfg)
    idm, saved = load_model(idm_file, runtime.device, classes={ActionIDM.kind: ActionIDM}, what="IDM")
    idm.eval().requires_grad_(False)
    idm_meta = PolicyMeta.from_json(saved)
    data = open_training_data(cfg.data, cfg.stream, cfg.cache_mb, cfg.max_trajectories or None)
    check_data(idm_meta, data, "--data", "the IDM")
    meta = _policy_meta(data, cfg.data, "idm", int(idm_meta.frame_stack))

    # Phase 1: pseudo-label every transition of the large dataset.
    pseudo = cached_labels(
        run.path / "pseudo_actions.npy", file_identity(idm_file), (data.num_frames, data.action_dim), "float32",
        lambda out: label_transitions(idm, data, int(meta.frame_stack), out, runtime, cfg.label_batch_size, progress=cfg.progress, desc="label with IDM"),
    )  # fmt: skip
    # How good the pseudo-labels are (the large dataset's true actions are never trained on).
    steps = data.valid_steps
    pseudo_mse = float(((np.asarray(pseudo[steps], np.float64) - data.all_actions()[steps]) ** 2).mean())

    # Phase 2: BC on the pseudo-actions.
    def targets(batch: Batch) -> torch.Tensor:
        return torch.from_numpy(np.asarray(pseudo[batch.steps], dtype=np.float32))

    label_mean = np.asarray(made.action_mean, np.float32)
    policy, result, per_epoch = _train_policy(data, targets, cfg, run, runtime, meta, label_mean)
    if distributed.is_main():
        save_model(run.path / "policy.pt", policy, meta)
    summary = IDMBCSummary(
        final_loss=result.final_loss, updates=result.updates, samples_per_s=result.samples_per_s,
        epochs=result.updates / per_epoch, idm_updates=made.updates, idm_final_loss=made.final_loss,
        pseudo_label_mse=pseudo_mse, labeled_trajectories=made.labeled_trajectories,
        device=str(runtime.device), policy=str(run.path / "policy.pt"),
    )  # fmt: skip
    if cfg.eval_data and distributed.is_main():
        summary.offline = _offline(policy, meta, cfg, label_mean)
        summary.offline.idm_action_mse = _idm_mse(idm, cfg, meta, runtime)
    run.write_summary(summary)
    return summary
