"""Stage 3: the action decoder, which turns a latent policy into one that acts.

A small MLP (:class:`laom.models.policy.ActionDecoder`: two hidden layers of 256,
ReLU6) maps the latent policy's *predicted* z = pi(o_t) to the true action a_t, trained
on the small labelled subset: MSE, 2500 updates of batch 512 (drawn with replacement,
so the count is the same whatever the labelled size), lr 3e-4. Training on pi's
predictions rather than on the LAM's labels fits the decoder to the inputs it will see
when acting. The latent policy is frozen, so pi(o_t) is computed once for every
labelled transition and the loop only runs the MLP.

The run's ``policy.pt`` holds pi and the decoder together: decoder(pi(o)) is the acting
policy ``laom evaluate`` runs.

With ``--snapshot_episodes N`` the stage also draws the acting policy's return curve: for
every snapshot latent BC kept (its ``--snapshot_every``) it trains a decoder the same way
(same seed, same batches) and evaluates decoder(pi_k(o)) on N online episodes, then the
final policy on the same N, one row each in RUN/curve.jsonl (the rows BC's LearningCurve
writes). Rows already there are kept, so a resumed stage adds only the missing ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laom.data.sampler import BatchSampler, model_input
from laom.errors import require
from laom.models.policy import ActingPolicy, ActionDecoder
from laom.models.saving import load_policy_file, save_model
from laom.training import distributed
from laom.training.bc import LATENT_POLICY_FILE, load_labeled, require_run, validate_common
from laom.training.config import TrainConfig
from laom.training.loop import Loop, TrainState
from laom.training.optim import make_optimizer, make_scheduler, optimizer_step
from laom.training.options import opt
from laom.training.rundir import RunDir
from laom.training.runtime import setup_runtime, step_generator
from laom.training.summaries import DecoderSummary, LatentBCSummary, OfflineScores


@dataclass
class DecoderConfig(TrainConfig):
    """Action decoder. Defaults are the paper's values, cheap enough for CPU (laom/configs/cpu/decoder.yaml)."""

    STAGE = "decoder"
    policy: str = opt("", "latent BC run directory (holds latent_policy.pt)")
    labeled: str = opt("", "the small action-labelled dataset")
    eval_data: str = opt("", "optional: offline action MSE of the acting policy on this file")
    out: str = opt("", "run directory")
    batch_size: int = 512
    total_updates: int = opt(2500, "updates to train (the decoder counts updates; epochs is unused)", ge=1)
    learning_rate: float = 3e-4
    warmup_epochs: float = 0.0
    checkpoint_every: int = 500
    hidden_dim: int = opt(256, "MLP hidden width", ge=1)
    num_layers: int = opt(2, "hidden layers of the MLP (0 = linear)", ge=0)
    encode_batch_size: int = opt(256, "batch for computing pi(o) over the labelled file", ge=1)
    eval_samples: int = opt(20000, "transitions of --eval-data for the offline action MSE", ge=1)
    snapshot_episodes: int = opt(0, "> 0: the return curve: a decoder per snapshot of the latent policy (latent "
                                 "BC's --snapshot_every), each evaluated on this many episodes", ge=0)  # fmt: skip
    snapshot_workers: int = opt(2, "evaluation worker processes per curve point", ge=0)


@torch.no_grad()
def predict_latents(policy: nn.Module, data: Any, frame_stack: int, device: torch.device, batch_size: int) -> torch.Tensor:
    """pi(o_t) for every transition of ``data`` (float32, on CPU, in ``valid_steps`` order).

    Filled into one preallocated tensor: at 128 labelled trajectories and 8,192-d latents
    the result is 4.2 GB, and chunks joined by ``torch.cat`` would need twice that at once."""
    steps = data.valid_steps
    sampler = BatchSampler(data, min(batch_size, len(steps)), frame_stack, 1, 0, keys=("obs",))
    out: torch.Tensor | None = None
    for i in range(0, len(steps), sampler.batch_size):
        chunk = steps[i : i + sampler.batch_size]
        obs = model_input(sampler.gather(chunk, np.ones_like(chunk))["obs"], device, False)
        pred = policy(obs).float().cpu()
        if out is None:
            out = torch.empty((len(steps), *pred.shape[1:]), dtype=pred.dtype)
        out[i : i + len(chunk)] = pred
    assert out is not None  # a labelled file has transitions (load_labeled checks)
    return out


def train_decoder(cfg: DecoderConfig) -> DecoderSummary:
    """Train (or resume, or return the summary of a finished run in ``cfg.out``)."""
    from laom.evaluation.policy import offline_action_mse

    validate_common(cfg)
    policy_file = require_run(cfg.policy, "--policy", LATENT_POLICY_FILE)
    require(bool(cfg.labeled), "--labeled is required")
    if cfg.snapshot_episodes:  # the curve's last point is the run's update count, read from its summary
        require_run(cfg.policy, "--policy", "summary.json")
    run = RunDir(cfg.out)
    run.prepare(cfg)
    if run.finished:
        return run.read_summary(DecoderSummary)
    runtime = setup_runtime(cfg)

    latent_policy = load_policy_file(policy_file, runtime.device)
    meta = latent_policy.meta
    labeled = load_labeled(cfg.labeled, meta)
    frame_stack = int(meta.frame_stack)
    # The frozen policy's predictions and the true actions of every labelled transition.
    z = predict_latents(latent_policy.policy, labeled, frame_stack, runtime.device, cfg.encode_batch_size).to(runtime.device)
    actions = torch.from_numpy(labeled.actions[labeled.valid_steps]).to(runtime.device)

    decoder, optimizer, scheduler = _new_decoder(cfg, z.shape[1], labeled.action_dim, len(z), runtime.device)
    total = cfg.total_updates
    loop = Loop(run, cfg, total, TrainState(decoder, optimizer, scheduler))
    ddp = distributed.wrap(decoder, runtime.device)
    mine = distributed.rank_slice(distributed.shard_size(cfg.batch_size) * distributed.info().world_size)

    def step(update: int, want_norm: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        # The global batch is drawn with replacement from (seed, update), so a resume
        # replays it; under torchrun each rank takes its slice of it.
        idx = _batch(cfg, update, len(z), runtime.device)[mine]
        loss = F.mse_loss(ddp(z[idx]), actions[idx])
        return {"loss": loss}, optimizer_step(loss, decoder, optimizer, scheduler, cfg.grad_clip, want_norm)

    result = loop.run(step, batch_size=distributed.shard_size(cfg.batch_size), desc="action decoder")
    last_loss = result.final_loss  # read back from metrics.jsonl when resumed at the very end
    decoder.eval()
    with torch.no_grad():
        train_mse = float(F.mse_loss(decoder(z), actions))

    # the latent policy's meta as its file holds it, plus what this stage adds
    acting_meta = meta.replaced(outputs="action", labeled=str(Path(cfg.labeled).resolve()))
    if distributed.is_main():
        save_model(run.path / "policy.pt", ActingPolicy(latent_policy.policy, decoder, acting_meta), acting_meta)
    summary = DecoderSummary(
        method=meta.method or "", updates=total, final_loss=last_loss, train_action_mse=train_mse,
        labeled_transitions=len(z), labeled_trajectories=labeled.num_trajectories, device=str(runtime.device),
        policy=str(run.path / "policy.pt"),
    )  # fmt: skip
    mean = labeled.actions[labeled.valid_steps].mean(0)
    eval_data = load_labeled(cfg.eval_data, meta, "--eval-data") if cfg.eval_data else None
    if eval_data is not None and distributed.is_main():
        acting = ActingPolicy(latent_policy.policy, decoder, acting_meta).eval()
        summary.offline = OfflineScores.from_json(
            offline_action_mse(acting, eval_data, cfg.eval_samples, reference_mean=mean)
        )
    if cfg.snapshot_episodes > 0 and distributed.is_main():
        final = ActingPolicy(latent_policy.policy, decoder, acting_meta).eval()
        del z  # each curve point labels the file again (4.2 GB at 128 trajectories): one at a time
        snapshot_curve(cfg, run.path, labeled, actions, final, eval_data, mean, runtime.device)
    run.write_summary(summary)
    return summary


def _new_decoder(
    cfg: DecoderConfig, latent_dim: int, action_dim: int, transitions: int, device: torch.device
) -> tuple[ActionDecoder, torch.optim.Optimizer, Any]:
    """The decoder, its optimizer and schedule, seeded by ``cfg.seed``: every decoder of a
    run (the final one and the curve's) starts alike."""
    torch.manual_seed(cfg.seed)
    decoder = ActionDecoder(latent_dim, action_dim, cfg.hidden_dim, cfg.num_layers).to(device)
    warmup = min(cfg.total_updates, round(cfg.warmup_epochs * max(1, transitions // cfg.batch_size)))
    optimizer = make_optimizer(decoder, cfg.learning_rate, cfg.weight_decay)
    return decoder, optimizer, make_scheduler(optimizer, warmup, cfg.total_updates)


def _batch(cfg: DecoderConfig, update: int, size: int, device: torch.device) -> torch.Tensor:
    """The indices of update ``update``'s global batch, drawn with replacement from (seed, update)."""
    gen = step_generator(cfg.seed, update, device=device)
    return torch.randint(0, size, (cfg.batch_size,), generator=gen, device=device)


def snapshot_curve(
    cfg: DecoderConfig, out: Path, labeled: Any, actions: torch.Tensor, final: ActingPolicy, eval_data: Any,
    reference_mean: np.ndarray, device: torch.device,
) -> list[dict[str, Any]]:  # fmt: skip
    """The acting policy's return against latent BC's updates (see the module's doc): a
    decoder per latent-BC snapshot, trained on this stage's labels as the final one is,
    and the final acting policy, each evaluated alike. Returns the rows added."""
    from laom.training.bc import read_snapshots
    from laom.training.curve import CURVE_FILE, append_curve_row, curve_point, read_curve

    policy_dir = Path(cfg.policy)
    final_update = RunDir(policy_dir).read_summary(LatentBCSummary).updates or 0
    done = {int(row["update"]) for row in read_curve(out)}
    points: list[tuple[int, Path | None]] = [*read_snapshots(policy_dir), (final_update, None)]
    added = []
    for update, path in points:
        if update in done:
            continue
        start = time.perf_counter()
        acting = final if path is None else _snapshot_policy(cfg, path, labeled, actions, final, device)
        train_seconds = round(time.perf_counter() - start, 2)
        row = curve_point(
            acting, update, eval_data=eval_data, episodes=cfg.snapshot_episodes, workers=cfg.snapshot_workers,
            seed=0, offline_samples=min(cfg.eval_samples, 5000), reference_mean=reference_mean,
        )  # fmt: skip
        row["train_seconds"] = train_seconds  # the point's decoder (its labelling and training), for the compute section
        append_curve_row(out / CURVE_FILE, row)
        added.append(row)
    return added


def _snapshot_policy(
    cfg: DecoderConfig, path: Path, labeled: Any, actions: torch.Tensor, final: ActingPolicy, device: torch.device
) -> ActingPolicy:
    """A curve point's acting policy: the snapshot's latent policy and a decoder fitted on
    its labels. Its own function so the labels (4.2 GB at 128 trajectories) are freed on
    return, before the point is evaluated and the next point labels the file again."""
    snap = load_policy_file(path, device)
    z = predict_latents(snap.policy, labeled, int(final.meta.frame_stack), device, cfg.encode_batch_size).to(device)
    return ActingPolicy(snap.policy, _fit_decoder(cfg, z, actions, device), final.meta).eval()


def _fit_decoder(cfg: DecoderConfig, z: torch.Tensor, actions: torch.Tensor, device: torch.device) -> ActionDecoder:
    """A curve point's decoder: the final decoder's updates, batches and schedule, in one
    process and without checkpoints (a minute's work; a killed point is simply redone)."""
    decoder, optimizer, scheduler = _new_decoder(cfg, z.shape[1], actions.shape[1], len(z), device)
    decoder.train()
    for update in range(cfg.total_updates):
        idx = _batch(cfg, update, len(z), device)
        loss = F.mse_loss(decoder(z[idx]), actions[idx])
        optimizer_step(loss, decoder, optimizer, scheduler, cfg.grad_clip, False)
    return decoder.eval()

