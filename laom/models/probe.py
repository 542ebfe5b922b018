"""Linear probes: how linearly decodable true actions (or states) are from frozen features.

The paper's headline metric for latent actions is the MSE of a linear layer trained on
frozen latent actions to predict the true action. Here that layer is fitted in closed
form (ridge-regularised least squares on standardised features, float64 solve): the
optimum the SGD-trained probe of the release approaches, without learning-rate or
epoch choices that would make numbers depend on probe training. The tiny ridge term
only matters when features outnumber samples.

The distractor probes (bottom) use the same fit to ask what else a latent action
encodes: the change of the camera, the background video and the colours between the
two frames it was computed from, when the dataset recorded them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ProbeResult:
    mse: float  # test MSE of the probe, averaged over output dimensions
    baseline_mse: float  # test MSE of predicting the training mean (about the variance)
    r2: float  # 1 - mse / baseline_mse
    weight: torch.Tensor  # [out, in] on the original (unstandardised) features
    bias: torch.Tensor  # [out]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(x), self.weight.shape[0], dtype=torch.float64)
        for rows in _chunks(len(x)):
            out[rows] = x[rows].double() @ self.weight.T + self.bias
        return out


# Rows per float64 block: the probe never holds a float64 copy of its whole input (20,000 x
# 8,192 latents are 1.3 GB as float64; fit and predict held two such copies at once, and a
# LAOM LAM's final probe peaked at 12.5 GB, so two LAMs could not probe together in 24 GB).
PROBE_ROWS = 2048


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(i + PROBE_ROWS, n)) for i in range(0, n, PROBE_ROWS)]


def _column_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation (ddof=1, floored at 1e-8) in float64, two
    passes over row blocks."""
    n = len(x)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for rows in _chunks(n):
        total += x[rows].double().sum(0)
    mean = total / n
    squares = torch.zeros_like(mean)
    for rows in _chunks(n):
        squares += ((x[rows].double() - mean) ** 2).sum(0)
    return mean, (squares / max(n - 1, 1)).sqrt().clamp_min(1e-8)


def fit_linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    ridge: float = 1e-4,
) -> ProbeResult:
    """Fit y ~ W x + b on train, report MSE on test.

    ``ridge`` is relative: the penalty is ``ridge * n * ||W||^2`` on standardised x.
    Uses the primal (features x features) or dual (samples x samples) system, whichever
    is smaller, so 8192-d latents with a few thousand samples stay cheap. The primal
    Gram matrix is summed over blocks of standardised rows, so beside it only one block
    is ever float64.
    """
    y = train_y.double()
    mean, std = _column_stats(train_x)
    y_mean = y.mean(0)
    yc = y - y_mean
    n, d = train_x.shape
    lam = ridge * n
    if d <= n:
        gram = torch.zeros(d, d, dtype=torch.float64)
        gram.diagonal().fill_(lam)  # the ridge, without a second d x d matrix
        xty = torch.zeros(d, y.shape[1], dtype=torch.float64)
        for rows in _chunks(n):
            xs = train_x[rows].to(torch.float64, copy=True).sub_(mean).div_(std)  # never the caller's
            gram.addmm_(xs.T, xs)
            xty.addmm_(xs.T, yc[rows])
        w = torch.linalg.solve(gram, xty)
    else:  # fewer samples than features: the whole (small) sample standardised at once
        xs = train_x.to(torch.float64, copy=True).sub_(mean).div_(std)
        w = xs.T @ torch.linalg.solve(xs @ xs.T + lam * torch.eye(n, dtype=xs.dtype), yc)
        del xs
    weight = (w / std[:, None]).T  # back to raw feature scale
    bias = y_mean - weight @ mean
    result = ProbeResult(0.0, 0.0, 0.0, weight, bias)
    pred = result.predict(test_x)
    ty = test_y.double()
    result.mse = float(((pred - ty) ** 2).mean())
    result.baseline_mse = float(((ty - y_mean) ** 2).mean())
    result.r2 = 1.0 - result.mse / max(result.baseline_mse, 1e-12)
    return result


# --------------------------------------------------------------------------- distractors
# What the distractor probes ask of a latent action z(o_t, o_t+k): how linearly it predicts
# the change of each distractor between the two frames, next to how well it predicts the
# action. Each factor is the change of these per-frame records (laom.data.format,
# docs/distractors.md); a file that lacks a factor's records leaves that factor out.
DISTRACTOR_FACTORS: dict[str, tuple[str, ...]] = {
    "camera": ("camera",),  # camera motion: azimuth, elevation, zoom and roll offsets
    "background": ("background_frame",),  # which way (and how far) the video moved
    "color": ("color",),  # colour drift of every material
}


def distractor_changes(
    records: Mapping[str, np.ndarray] | None, steps: np.ndarray, offsets: int | np.ndarray = 1
) -> dict[str, np.ndarray] | None:
    """Per factor, the change of its records from frame t to frame t+k: [n, dims] float64
    for ``steps`` t and ``offsets`` k (rows of ``records`` are frames). None without records."""
    if not records:
        return None
    steps = np.asarray(steps)
    later = steps + np.asarray(offsets)
    out: dict[str, np.ndarray] = {}
    for factor, names in DISTRACTOR_FACTORS.items():
        parts = [
            (records[n][later].astype(np.float64) - records[n][steps].astype(np.float64)).reshape(len(steps), -1)
            for n in names
            if n in records
        ]
        if parts:
            out[factor] = np.concatenate(parts, axis=1)
    return out or None


def _standardised(train_y: np.ndarray, test_y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Both sides of one factor's change, each dimension scaled by the fitting side's
    statistics, constant dimensions left out; None when nothing changes or a side is empty."""
    y = torch.as_tensor(train_y, dtype=torch.float64)
    ty = torch.as_tensor(test_y, dtype=torch.float64)
    if len(y) < 2 or len(ty) < 1:
        return None
    mean, std = y.mean(0), y.std(0)
    keep = std > 1e-9
    if not bool(keep.any()):
        return None
    scale = std[keep]
    return (y[:, keep] - mean[keep]) / scale, (ty[:, keep] - mean[keep]) / scale


def change_probe_r2(
    train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray, ridge: float = 1e-4
) -> float | None:
    """R² of a linear probe from features to one factor's change, or None when there is
    nothing to explain (the factor never changes: a static or switched-off distractor).

    Each dimension is standardised with the fitting side's statistics first, so the R² is
    the (test-variance-weighted) mean over dimensions rather than the zoom's or the
    largest colour channel's alone; constant dimensions are left out.
    """
    sides = _standardised(train_y, test_y)
    if sides is None:
        return None
    result = fit_linear_probe(train_x, sides[0], test_x, sides[1], ridge)
    if result.baseline_mse < 1e-12:
        return None
    return result.r2


def distractor_probe_r2(
    train_x: torch.Tensor,
    train_changes: Mapping[str, np.ndarray] | None,
    test_x: torch.Tensor,
    test_changes: Mapping[str, np.ndarray] | None,
    ridge: float = 1e-4,
) -> dict[str, float | None] | None:
    """R² per distractor factor (None for a factor not recorded on both sides or never
    changing); None when either side has no distractor records at all."""
    if not train_changes or not test_changes:
        return None
    # A ridge fit is separable across output columns, so every factor's standardised
    # columns are fitted in one solve: each gets exactly its own probe (change_probe_r2's)
    # for the cost of one Gram matrix instead of one per factor (minutes at 8192-d on a CPU).
    out: dict[str, float | None] = dict.fromkeys(DISTRACTOR_FACTORS)
    fit_cols, test_cols, spans = [], [], {}
    for factor in DISTRACTOR_FACTORS:
        sides = None
        if factor in train_changes and factor in test_changes:
            sides = _standardised(train_changes[factor], test_changes[factor])
        if sides is None:
            continue
        start = sum(c.shape[1] for c in fit_cols)
        spans[factor] = slice(start, start + sides[0].shape[1])
        fit_cols.append(sides[0])
        test_cols.append(sides[1])
    if not spans:
        return out
    y, ty = torch.cat(fit_cols, 1), torch.cat(test_cols, 1)
    pred = fit_linear_probe(train_x, y, test_x, ty, ridge).predict(test_x)
    y_mean = y.mean(0)
    for factor, cols in spans.items():
        baseline = float(((ty[:, cols] - y_mean[cols]) ** 2).mean())
        mse = float(((pred[:, cols] - ty[:, cols]) ** 2).mean())
        out[factor] = None if baseline < 1e-12 else 1.0 - mse / max(baseline, 1e-12)
    return out
