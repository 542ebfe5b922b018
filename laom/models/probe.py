"""Linear probes: how linearly decodable true actions (or states) are from frozen features.

The paper's headline metric for latent actions is the MSE of a linear layer trained on
frozen latent actions to predict the true action. Here that layer is fitted in closed
form (ridge-regularised least squares on standardised features, float64 solve): the
optimum the SGD-trained probe of the release approaches, without learning-rate or
epoch choices that would make numbers depend on probe training. The tiny ridge term
only matters when features outnumber samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ProbeResult:
    mse: float  # test MSE of the probe, averaged over output dimensions
    baseline_mse: float  # test MSE of predicting the training mean (about the variance)
    r2: float  # 1 - mse / baseline_mse
    weight: torch.Tensor  # [out, in] on the original (unstandardised) features
    bias: torch.Tensor  # [out]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return x.double() @ self.weight.T + self.bias


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
    is smaller, so 8192-d latents with a few thousand samples stay cheap.
    """
    x = train_x.double()
    y = train_y.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    y_mean = y.mean(0)
    xs = (x - mean) / std
    yc = y - y_mean
    n, d = xs.shape
    lam = ridge * n
    if d <= n:
        w = torch.linalg.solve(xs.T @ xs + lam * torch.eye(d, dtype=xs.dtype), xs.T @ yc)
    else:
        w = xs.T @ torch.linalg.solve(xs @ xs.T + lam * torch.eye(n, dtype=xs.dtype), yc)
    weight = (w / std[:, None]).T  # back to raw feature scale
    bias = y_mean - weight @ mean
    result = ProbeResult(0.0, 0.0, 0.0, weight, bias)
    pred = result.predict(test_x)
    ty = test_y.double()
    result.mse = float(((pred - ty) ** 2).mean())
    result.baseline_mse = float(((ty - y_mean) ** 2).mean())
    result.r2 = 1.0 - result.mse / max(result.baseline_mse, 1e-12)
    return result
