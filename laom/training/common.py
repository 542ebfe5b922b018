"""What every training stage shares: configs, devices, optimisation, run directories,
checkpoints with resume, metrics and progress.

A stage is a dataclass config (subclass of :class:`TrainConfig`) plus a loop; the loop
gets from here:

* :func:`parse_config` - draccus parse of defaults < YAML preset < ``--field value``;
* :func:`setup_runtime` - threads, malloc tuning, device, autocast dtype, seeds;
* :func:`make_optimizer`, :func:`make_scheduler` - AdamW (no decay on biases/norms),
  linear warmup then linear decay;
* :class:`RunDir` - the run directory layout, config check on resume, atomic
  checkpoints, ``summary.json``;
* :class:`MetricsWriter` - metrics.jsonl (truncated to the checkpoint on resume),
  optional TensorBoard / wandb;
* :class:`Progress` - progress over updates with samples/s (:mod:`laom.progress`).

Randomness in the loops is derived from (seed, update index) wherever possible (see
:func:`step_seed`), so a resumed run replays the same batches and augmentations as an
uninterrupted one and checkpoints need no RNG streams.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import io
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, TypeVar

import numpy as np
import torch
import yaml

from laom.errors import LaomError
from laom.models.device import Runtime, autocast_dtype, resolve_device
from laom.models.saving import load_torch, save_torch
from laom.outputs import atomic_write_text
from laom.training.options import NON_RESULT_FIELDS, check_fields, normalize_overrides, opt

C = TypeVar("C")


@dataclass
class TrainConfig:
    """Fields every training stage has. Stages subclass this and add their own."""

    # The stage a config class trains, as trackers name it (laom.training.tracking). A
    # class attribute, not a field: no flag, no line in config.yaml, no part of a key.
    STAGE = ""

    seed: int = opt(0, "random seed of initialisation, batches and augmentations", ge=0)
    device: str = opt("auto", "auto (CUDA when available), cpu, cuda or cuda:N",
                      pattern=r"auto|cpu|cuda(:\d+)?", expected="auto, cpu, cuda or cuda:N")  # fmt: skip
    precision: str = opt("auto", "auto: bf16 on CUDA and on CPUs with bf16 support, else fp32",
                         choices=("auto", "fp32", "bf16"))  # fmt: skip
    threads: int = opt(0, "torch CPU threads; 0 = one per core", ge=0)
    batch_size: int = opt(512, "samples per update", ge=1)
    epochs: float = opt(10.0, "passes over the training data (fractions allowed)", gt=0)
    total_updates: int = opt(0, "updates to train; > 0 overrides epochs", ge=0)
    learning_rate: float = opt(1e-4, "AdamW peak learning rate", gt=0)
    warmup_epochs: float = opt(0.0, "linear warmup length, in epochs (fractions allowed)", ge=0)
    weight_decay: float = opt(0.0, "AdamW weight decay (not on biases and norms)", ge=0)
    grad_clip: Optional[float] = opt(None, "max global grad norm; null = no clipping", gt=0)
    compile: bool = opt(False, "torch.compile the training forward (worth it on GPUs; slow start)")
    checkpoint_every: int = opt(500, "updates between checkpoints (and one at the end)", ge=1)
    log_every: int = opt(50, "updates between metrics.jsonl rows", ge=1)
    progress: bool = opt(True, "show training progress")
    tensorboard: bool = opt(False, "also log metrics to RUN/tensorboard (pip install laom[tensorboard])")
    wandb: bool = opt(False, "also log metrics to Weights & Biases (pip install laom[wandb])")
    wandb_project: str = opt("laom", "wandb project name")


# Config fields naming a file or run directory: the same place written relative or
# absolute (``laom pipeline`` resolves paths, a hand-run stage may not) is the same run.
PATH_FIELDS = {"out", "data", "labeled", "eval_data", "lam", "policy"}


def _same_setting(name: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if name in PATH_FIELDS and isinstance(old, str) and isinstance(new, str) and old and new:
        return Path(old).resolve() == Path(new).resolve()
    return False


# --------------------------------------------------------------------------- configs


def resolve_preset(config: str | None, stage: str) -> Path | None:
    """``--config`` value -> the YAML file of ``stage``: a YAML file as given, a folder of
    ``<stage>.yaml`` files (as ``laom pipeline --preset`` takes), or the name of a preset
    shipped with laom (cpu, demo, paper; read from the installed package, so it works
    outside a checkout)."""
    from laom.training.presets import preset_file, preset_names

    if not config:
        return None
    path = Path(config)
    if path.is_file():
        return path
    if "/" not in config and not config.endswith((".yaml", ".yml")):
        preset = preset_file(config, stage)
        if preset is not None:
            return preset
        if not path.is_dir():
            raise LaomError(f"--config {config}: no preset {config}/{stage}.yaml "
                            f"(presets: {', '.join(preset_names())}; or a YAML file, or a folder of them)")  # fmt: skip
    if path.is_dir():
        if (path / f"{stage}.yaml").is_file():
            return path / f"{stage}.yaml"
        raise LaomError(f"--config {config}: no {path / f'{stage}.yaml'}")
    raise LaomError(f"--config {config}: no such file")


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def parse_config(
    cls: type[C], config_path: str | Path | None, overrides: Sequence[str], **fixed: Any
) -> C:
    """Defaults of ``cls`` < YAML at ``config_path`` < ``--field value`` overrides < ``fixed``.

    Unknown fields (in the YAML or on the command line) are a one-line LaomError naming
    the field, not an argparse usage dump.
    """
    import draccus

    names = _field_names(cls)
    if config_path is not None:
        try:
            loaded = yaml.safe_load(Path(config_path).read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:  # yaml's message spans lines
            raise LaomError(f"config {config_path}: not a YAML file ({' '.join(str(exc).split())})") from None
        if not isinstance(loaded, dict):
            raise LaomError(f"config {config_path}: expected a mapping of field: value")
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise LaomError(f"config {config_path}: unknown field(s) {', '.join(unknown)}")
    args = normalize_overrides(cls, overrides)  # lists as typed (16,32,32), bad values named
    stderr = io.StringIO()  # argparse's usage dump becomes part of one error line
    try:
        with contextlib.redirect_stderr(stderr):
            cfg = draccus.parse(
                cls, config_path=str(config_path) if config_path else None, args=args
            )
    except SystemExit:
        reason = stderr.getvalue().strip().splitlines()[-1:] or ["invalid value"]
        raise LaomError(
            f"{reason[0].split('error: ', 1)[-1]} (in: {' '.join(overrides)})"
        ) from None
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, LaomError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # a config's own refusal (e.g. a method with another's defaults)
            raise LaomError(str(cause)) from None
        raise LaomError(
            f"invalid configuration: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    for key, value in fixed.items():
        if value is not None:
            setattr(cfg, key, value)
    check_fields(cfg)  # every range, before any stage reads data or writes a file
    return cfg


STAGE_FILES = (("data", "--data"), ("labeled", "--labeled"), ("eval_data", "--eval-data"))


def check_stage_inputs(cfg: Any) -> dict[str, Any]:
    """What every stage can check before it writes anything, beyond each field's range:
    its dataset files (each in the release's layout, all of one task with the same frame,
    action and state sizes; headers only, so big files cost nothing) and --device. A run
    that failed on these later left a run folder behind. Returns each file's
    :class:`~laom.data.compat.DataFacts` by flag, for a stage's own checks."""
    from laom.data.compat import check_compatible

    facts = check_compatible({flag: str(getattr(cfg, name, "") or "") for name, flag in STAGE_FILES})
    stack = getattr(cfg, "frame_stack", None)
    if facts and isinstance(stack, int):  # a longer stack than any trajectory is padding, not history
        flag, first = next(iter(facts.items()))
        if stack > first.longest:
            raise LaomError(f"--frame_stack {stack}: expected at most {first.longest}, the longest trajectory of {flag} {first.path}")
    if isinstance(getattr(cfg, "device", None), str):
        resolve_device(cfg.device)
    return facts


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain (YAML/JSON-safe) dict of a config dataclass."""
    out = {}
    for key, value in dataclasses.asdict(cfg).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def config_to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


# --------------------------------------------------------------------------- runtime


def tune_malloc() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    Training allocates and frees the same large activations every step; by default
    glibc serves them with fresh mmaps, so every step pays page faults for every
    activation (a large share of step time on small-CPU VMs). This raises the mmap
    threshold to glibc's mallopt maximum (32 MiB) and stops trimming. Larger blocks can
    only be kept with the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set before Python starts (see README).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        libc.mallopt(m_trim_threshold, 1 << 30)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code using the legacy global RNG
    torch.manual_seed(seed)


def step_seed(seed: int, update: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for (run seed, update, stream): per-step RNGs that a
    resumed run reproduces exactly."""
    return int(
        np.random.SeedSequence([seed, update, stream]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def step_generator(
    seed: int, update: int, stream: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, update, stream))
    return g


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Threads, malloc tuning, device, precision and global seeds for a stage."""
    from laom.training import distributed

    tune_malloc()
    device = resolve_device(cfg.device)
    if distributed.world_size_from_env() > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", distributed.local_rank_from_env())  # one GPU per rank
    job = distributed.init(device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif job.enabled and device.type == "cpu":  # ranks on one machine share its cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // job.local_world_size))
    seed_everything(cfg.seed)
    return Runtime(device, autocast_dtype(cfg.precision, device))


# --------------------------------------------------------------------------- optimisation


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
    """(total updates, warmup updates) from epochs / total_updates / warmup_epochs."""
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


# --------------------------------------------------------------------------- run directory


class RunDir:
    """One training run's directory::

    RUN/config.yaml          resolved config (every field)
    RUN/checkpoints/last.pt  latest checkpoint (atomic), resumed from automatically
    RUN/metrics.jsonl        one JSON object per logged update
    RUN/summary.json         written last: its presence means the run finished
    RUN/<artifacts>          stage outputs (e.g. lam.pt)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.checkpoint_dir = self.path / "checkpoints"
        self.checkpoint_path = self.checkpoint_dir / "last.pt"
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"

    @property
    def finished(self) -> bool:
        return self.summary_path.is_file()

    def prepare(self, cfg: Any) -> None:
        """Create the directory and write the config, or check it matches on resume.

        Re-running the same command resumes; a different config in an existing run
        directory is an error (it would silently mix two runs).
        """
        from laom.training import distributed

        if not distributed.is_main():  # rank 0 checks and writes; the others wait for it
            distributed.barrier()
            return
        try:
            self._prepare(cfg)
        finally:
            distributed.barrier()

    def _prepare(self, cfg: Any) -> None:
        from laom.outputs import check_output

        check_output(self.path, "--out", kind="dir", create_parents=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        new = config_to_dict(cfg)
        # A folder with neither checkpoint nor summary holds nothing to lose (a run that
        # stopped before its first checkpoint): its config is replaced, not a reason to refuse.
        if self.config_path.is_file() and (self.checkpoint_path.is_file() or self.summary_path.is_file()):
            old = yaml.safe_load(self.config_path.read_text()) or {}
            diff = sorted(
                k
                for k in set(old) | set(new)
                if k not in NON_RESULT_FIELDS and not _same_setting(k, old.get(k), new.get(k))
            )
            if diff:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
                raise LaomError(
                    f"--out {self.path} holds a run with a different config ({shown}); use a new --out"
                )
        atomic_write_text(self.config_path, config_to_yaml(cfg))
        self.prune_checkpoints()  # a run finished by an older laom kept them

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state :meth:`save_checkpoint` saved (on the CPU), or None before the first."""
        if not self.checkpoint_path.is_file():
            return None
        return load_torch(self.checkpoint_path, "checkpoint", "delete it to restart")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint whole and flushed to disk (laom.models.saving.save_torch)."""
        save_torch(state, self.checkpoint_path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Finish the run: ``summary`` (stamped with the code version, in place) becomes
        summary.json, and the checkpoints, which only a resume needed, are deleted.

        Written by rank 0 (the only writer under torchrun); every rank returns once it exists.
        """
        from laom.outputs import code_version
        from laom.training import distributed

        summary.update(code_version())
        if distributed.is_main():
            atomic_write_text(
                self.summary_path, json.dumps(summary, indent=2, sort_keys=False) + "\n"
            )
            self.prune_checkpoints()
        distributed.barrier()

    def prune_checkpoints(self) -> None:
        """Delete ``checkpoints/`` of a finished run (it is 2-3x the final model: weights,
        optimizer moments). Everything downstream reads the stage's artifacts and summary,
        never a checkpoint; a run is finished once summary.json exists, so a kill halfway
        through leaves nothing that a re-run would read."""
        if self.finished and self.checkpoint_dir.is_dir():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text())


# --------------------------------------------------------------------------- metrics and progress


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


class MetricsWriter:
    """metrics.jsonl rows ``{"update": u, ...}``; optional TensorBoard and wandb mirrors.

    ``resume_from`` drops rows past the checkpoint a resumed run restarts from, so the
    file reads as if the run had never been interrupted.
    """

    def __init__(
        self, run: RunDir, cfg: TrainConfig, resume_from: int = 0, prefix: str = ""
    ) -> None:
        self.path = run.metrics_path
        self.prefix = prefix
        if self.path.is_file():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip()
                and _row_update(line) is not None
                and _row_update(line) <= resume_from
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self._file = open(self.path, "a")
        self._tb = None
        self._wandb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise LaomError(
                    "--tensorboard true needs the tensorboard package (pip install laom[tensorboard])"
                ) from None
            self._tb = SummaryWriter(str(run.path / "tensorboard"))
        if cfg.wandb:
            try:
                import wandb
            except ImportError:
                raise LaomError(
                    "--wandb true needs the wandb package (pip install laom[wandb])"
                ) from None
            from laom.training.tracking import wandb_init_kwargs

            # name method/stage/folder; id from the folder, so a resumed run continues it
            identity = wandb_init_kwargs(run.path, cfg)
            self._wandb = wandb.init(**identity, config=config_to_dict(cfg))

    def write(self, update: int, values: dict[str, Any]) -> None:
        row = {"update": update, **{k: _scalar(v) for k, v in values.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for key, value in row.items():
            if key != "update" and isinstance(value, (int, float)):
                if self._tb is not None:
                    self._tb.add_scalar(self.prefix + key, value, update)
        if self._wandb is not None:
            self._wandb.log(
                {self.prefix + k: v for k, v in row.items() if k != "update"}, step=update
            )

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _row_update(line: str) -> int | None:
    try:
        return int(json.loads(line)["update"])
    except (ValueError, KeyError, TypeError):
        return None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (metrics, learning curves), or [] when there is none yet."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


class Progress:
    """A tqdm bar over updates showing samples/s (measured since this process started
    training, so a resume does not report the checkpoint's updates as instant)."""

    def __init__(
        self, total: int, initial: int, batch_size: int, enabled: bool = True, desc: str = "train"
    ) -> None:
        from laom.progress import progress

        self.batch_size = batch_size
        self.start_update = initial
        self.start_time = time.perf_counter()
        # A bar on a terminal; plain lines in a log (laom.progress).
        self.bar = progress(total, desc, "upd", initial=initial, enabled=enabled)

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` of non-training work (learning-curve evaluation) out of the rate."""
        self.start_time += seconds

    def samples_per_s(self, update: int) -> float:
        elapsed = time.perf_counter() - self.start_time
        return (update - self.start_update) * self.batch_size / max(elapsed, 1e-9)

    def update(self, update: int, **postfix: Any) -> None:
        shown = {
            k: (f"{_scalar(v):.4g}" if isinstance(_scalar(v), float) else v) for k, v in postfix.items()
        }
        shown["samples/s"] = f"{self.samples_per_s(update):.0f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------- the update loop


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


class TrainLog:
    """The bookkeeping around an update loop: windowed metric means, metrics.jsonl rows,
    the progress bar and checkpoints, the same for every stage.

    Per update, ``record(done, values, ...)`` adds the loss terms to a running window
    (tensors, so nothing synchronises with a GPU between log rows). Every ``log_every``
    updates the window means, averaged over torchrun ranks, become a metrics row; every
    ``checkpoint_every`` updates ``state(done)`` is saved. Only rank 0 writes files and
    shows the bar. ``batch_size`` is this process's share; samples/s counts all ranks.
    """

    def __init__(
        self, run: RunDir, cfg: TrainConfig, total: int, start: int, batch_size: int, desc: str
    ) -> None:
        from laom.training import distributed

        self.run = run
        self.cfg = cfg
        self.total = total
        self.start = start
        self.main = distributed.is_main()
        world = distributed.info().world_size
        self.metrics = MetricsWriter(run, cfg, resume_from=start) if self.main else None
        self.progress = Progress(
            total, start, batch_size * world, enabled=cfg.progress and self.main, desc=desc
        )
        self._window: dict[str, torch.Tensor | float] = {}
        self._n = 0
        self.last: dict[str, float] = {}  # the latest logged window means
        self._shown = float("nan")

    def log_due(self, done: int) -> bool:
        return done % self.cfg.log_every == 0 or done == self.total

    def samples_per_s(self, done: int) -> float:
        return self.progress.samples_per_s(done)

    def record(
        self,
        done: int,
        values: dict[str, torch.Tensor | float],
        extra: dict[str, Any] | None = None,
        state: Any = None,
    ) -> None:
        """Account for update ``done`` (1-based). ``extra`` (logged as is) is only read
        on log rows; ``state(done)`` (a checkpoint dict) only when a checkpoint is due."""
        from laom.training import distributed

        for k, v in values.items():
            v = v.detach() if isinstance(v, torch.Tensor) else v
            self._window[k] = self._window[k] + v if k in self._window else v
        self._n += 1
        if self.log_due(done):
            means = {k: float(v) / self._n for k, v in self._window.items()}
            self.last = distributed.mean_over_ranks(means)
            self._window, self._n = {}, 0
            if self.metrics is not None:
                row = {**self.last, **(extra or {}), "samples_per_s": self.samples_per_s(done)}
                self.metrics.write(done, row)
            self._shown = self.last.get("loss", float("nan"))
        elif (done % 10 == 0 or done == self.start + 1) and "loss" in self._window:
            self._shown = float(self._window["loss"]) / self._n  # running mean for the bar
        self.progress.update(done, loss=self._shown)
        if state is not None and (done % self.cfg.checkpoint_every == 0 or done == self.total):
            if self.main:
                self.run.save_checkpoint(state(done))

    def close(self) -> None:
        self.progress.close()
        if self.metrics is not None:
            self.metrics.close()


def maybe_compile(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(module)`` when asked (the module itself otherwise). The compiled
    wrapper shares the parameters, so optimisers and checkpoints keep using the original."""
    return torch.compile(module) if enabled else module
