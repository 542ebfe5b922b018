"""A state expert as plain numpy arrays.

Data collection calls the expert once per environment step, thousands of times per
trajectory, so torch's per-call overhead (tens of microseconds, a module tree walk, a
no-grad context) would dominate. Every supported checkpoint format is therefore
reduced to the same tiny description (an optional observation normalisation, a stack
of dense layers, one hidden and one output activation) and evaluated with numpy.

The compact ``.npz`` form written by :meth:`Expert.save` is that description and
nothing else: no optimiser state, no critic, no replay buffer. Metadata travels as a
JSON string inside the archive, so one file is a complete expert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laom.errors import LaomError
from laom.outputs import atomic_path

FORMAT = "laom-expert"
FORMAT_VERSION = 1
HIDDEN_ACTIVATIONS = ("tanh", "relu")
OUTPUT_ACTIVATIONS = ("none", "tanh")


@dataclass
class Expert:
    """A greedy state policy: ``act(state) -> action``.

    ``weights[i]`` is stored as ``[in, out]`` so a batch is ``x @ W + b`` without a
    transpose per call. ``task`` is ``None`` when no source said which task the expert
    was trained for; commands that need it ask the user for ``--task``.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    hidden_activation: str = "relu"
    output_activation: str = "none"
    obs_mean: np.ndarray | None = None
    obs_std: np.ndarray | None = None
    obs_clip: float | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    task: str | None = None
    algo: str = "unknown"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weights or len(self.weights) != len(self.biases):
            raise LaomError(f"{self.source or 'expert'}: expected matching lists of weights and biases")
        if self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise LaomError(
                f"{self.source or 'expert'}: hidden activation {self.hidden_activation!r} is not one of {HIDDEN_ACTIVATIONS}"
            )
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise LaomError(
                f"{self.source or 'expert'}: output activation {self.output_activation!r} is not one of {OUTPUT_ACTIVATIONS}"
            )
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float32).reshape(-1) for b in self.biases]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or w.shape[1] != b.shape[0]:
                raise LaomError(f"{self.source or 'expert'}: layer {i} has weight {w.shape} and bias {b.shape}")
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise LaomError(f"{self.source or 'expert'}: layer {i} does not follow layer {i - 1}")
        # Normalisation is folded into a scale, so acting costs one multiply, not a divide.
        self._mean = None if self.obs_mean is None else np.asarray(self.obs_mean, np.float32).reshape(-1)
        self._scale = None
        if self.obs_std is not None:
            self.obs_std = np.asarray(self.obs_std, np.float32).reshape(-1)
            self._scale = (1.0 / self.obs_std).astype(np.float32)
        for name, vec in (("obs_mean", self._mean), ("obs_std", self.obs_std)):
            if vec is not None and vec.shape[0] != self.obs_dim:
                raise LaomError(f"{self.source or 'expert'}: {name} has {vec.shape[0]} entries, the network takes {self.obs_dim}")
        self._unscale: tuple[np.ndarray, np.ndarray] | None = None
        if self.action_low is not None and self.action_high is not None:
            low = np.asarray(self.action_low, np.float32).reshape(-1)
            high = np.asarray(self.action_high, np.float32).reshape(-1)
            self.action_low, self.action_high = low, high
            # Squashed policies emit [-1, 1]; only rescale when the bounds differ from that.
            if self.output_activation == "tanh" and not (np.all(low == -1) and np.all(high == 1)):
                self._unscale = ((high - low) / 2, (high + low) / 2)
        self._layers = list(zip(self.weights, self.biases, strict=True))
        self._hidden = np.tanh if self.hidden_activation == "tanh" else _relu

    @property
    def obs_dim(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def act_dim(self) -> int:
        return int(self.weights[-1].shape[1])

    def act(self, state: np.ndarray) -> np.ndarray:
        """Greedy action(s) for one state ``[D]`` or a batch ``[N, D]``, as float32.

        Returns the network's raw output (the environment does the clipping), because
        the datasets store exactly what the expert emitted.
        """
        x = np.asarray(state, dtype=np.float32)
        if x.ndim not in (1, 2) or x.shape[-1] != self.obs_dim:
            raise LaomError(
                f"{self.source or 'expert'}: expected a state of size {self.obs_dim} ([D] or [N, D]), got shape {x.shape}"
            )
        if self._mean is not None:
            x = x - self._mean
        if self._scale is not None:
            x = x * self._scale
        if self.obs_clip is not None:
            x = np.clip(x, -self.obs_clip, self.obs_clip)
        hidden = self._hidden
        for w, b in self._layers[:-1]:
            x = x @ w
            x += b
            x = hidden(x)
        w, b = self._layers[-1]
        x = x @ w
        x += b
        if self.output_activation == "tanh":
            x = np.tanh(x)
        if self._unscale is not None:
            x = x * self._unscale[0] + self._unscale[1]
        return x.astype(np.float32, copy=False)

    def describe(self) -> str:
        sizes = " -> ".join(str(s) for s in [self.obs_dim, *(w.shape[1] for w in self.weights)])
        return f"{self.algo} expert for {self.task or 'an unknown task'} ({sizes}, {self.hidden_activation})"

    def save(self, path: str | Path, **extra_meta: Any) -> Path:
        """Write the compact single-file form (``.npz``) that :func:`load` reads back."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            **self.meta,
            **extra_meta,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "algo": self.algo,
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
            "obs_clip": self.obs_clip,
            "n_layers": len(self.weights),
        }
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, sort_keys=True))}
        for i, (w, b) in enumerate(self._layers):
            arrays[f"w{i}"] = w
            arrays[f"b{i}"] = b
        for name in ("obs_mean", "obs_std", "action_low", "action_high"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.asarray(value, np.float32)
        with atomic_path(path) as tmp:  # never leave a half-written expert behind on interrupt
            np.savez_compressed(tmp, **arrays)
        return path


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def read_npz(path: Path, task: str | None = None) -> Expert:
    """Read the compact ``.npz`` form written by :meth:`Expert.save`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile/ValueError/OSError: all mean "not a readable npz"
        raise LaomError(f"{path}: not a readable laom expert .npz ({type(exc).__name__}: {exc})") from None
    if "meta" not in arrays or "w0" not in arrays:
        raise LaomError(f"{path}: an .npz without 'meta' and 'w0' arrays is not a laom expert")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError:
        raise LaomError(f"{path}: the expert's metadata is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise LaomError(f"{path}: expected format {FORMAT!r}, found {meta.get('format')!r}")
    n = int(meta.get("n_layers", 0))
    missing = [k for i in range(n) for k in (f"w{i}", f"b{i}") if k not in arrays]
    if n < 1 or missing:
        raise LaomError(f"{path}: expert archive is incomplete (missing {', '.join(missing) or 'layers'})")
    return Expert(
        weights=[arrays[f"w{i}"] for i in range(n)],
        biases=[arrays[f"b{i}"] for i in range(n)],
        hidden_activation=meta.get("hidden_activation", "relu"),
        output_activation=meta.get("output_activation", "none"),
        obs_mean=arrays.get("obs_mean"),
        obs_std=arrays.get("obs_std"),
        obs_clip=meta.get("obs_clip"),
        action_low=arrays.get("action_low"),
        action_high=arrays.get("action_high"),
        task=meta.get("task") or task,
        algo=meta.get("algo", "unknown"),
        source=str(path),
        meta=meta,
    )


def stack_from_linears(linears: Sequence[Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """torch ``Linear`` modules (or ``(weight [out,in], bias)`` pairs) -> ``[in,out]`` numpy layers."""
    weights, biases = [], []
    for layer in linears:
        w, b = (layer.weight, layer.bias) if hasattr(layer, "weight") else layer
        w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
        b = b.detach().cpu().numpy() if hasattr(b, "detach") else np.asarray(b)
        weights.append(np.asarray(w, np.float32).T)
        biases.append(np.asarray(b, np.float32))
    return weights, biases


def ppo_obs_std(var: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """The release's normaliser divides by ``sqrt(var + 1e-8)``."""
    return np.sqrt(np.asarray(var, np.float64) + eps).astype(np.float32)

