"""The optimisation every stage shares: AdamW (no decay on biases and norms), linear
warmup then linear decay, schedule lengths from epochs, and the update step itself."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from laom.training.config import TrainConfig


def make_optimizer(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW over trainable parameters; weight decay only on matrices/kernels (not on
    biases or norm gains, the release's grouping)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel (CPU and CUDA) is one pass over all parameters instead of ~10
    # elementwise kernels per tensor: the optimizer step stops showing up in profiles.
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=True)


def warmup_linear_decay(update: int, warmup: int, total: int) -> float:
    """LR factor: linear 0 -> 1 over ``warmup`` updates, then linear 1 -> 0 at ``total``."""
    if warmup > 0 and update < warmup:
        return (update + 1) / warmup
    return max(0.0, (total - update) / max(1, total - warmup))


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda u: warmup_linear_decay(u, warmup, total)
    )


def schedule_lengths(cfg: TrainConfig, updates_per_epoch: int) -> tuple[int, int]:
    """(total updates, warmup updates) from epochs / total_updates / warmup_epochs, an
    epoch being at most ``epoch_transitions`` samples when that is set."""
    if cfg.epoch_transitions > 0:
        updates_per_epoch = min(updates_per_epoch, max(1, cfg.epoch_transitions // cfg.batch_size))
    total = (
        cfg.total_updates
        if cfg.total_updates > 0
        else max(1, math.ceil(cfg.epochs * updates_per_epoch))
    )
    warmup = min(total, round(cfg.warmup_epochs * updates_per_epoch))
    return total, warmup


def clip_and_norm(parameters: Iterable[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Global grad norm (clipped to ``max_norm`` when set)."""
    params = [p for p in parameters if p.grad is not None]
    if max_norm is not None:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    if not params:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in params])))


def optimizer_step(
    loss: torch.Tensor,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float | None,
    want_norm: bool = True,
) -> torch.Tensor | None:
    """backward, optional clipping, AdamW step, LR schedule: the same in every stage.

    The global grad norm costs a pass over the gradients, so it is computed only when
    clipping needs it or the caller logs it (``want_norm``).
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = clip_and_norm(model.parameters(), grad_clip) if (want_norm or grad_clip) else None
    optimizer.step()
    scheduler.step()
    return norm
