"""The release's own LAM training loops and ours, timed side by side in one process.

    git clone https://github.com/dunnolab/laom /tmp/laom-release
    # the release's src/augmentations.py needs torchvision.transforms; install it beside
    # the checkout, not into our environment (the registry wheel is a CUDA build, whose
    # pure-Python transforms are all the release uses):
    .venv/bin/pip install --no-deps --target /tmp/laom-release/.deps torchvision==0.28.0
    nice .venv/bin/python benchmarks/release_speed.py --release /tmp/laom-release --release-fp32 --bf16-updates 2
    nice .venv/bin/python benchmarks/release_speed.py --release DIR --shape paper --updates 3 --warmup 1

Why: README's "ours is Nx the release" should come from one command that runs both
implementations at the same shape, on the same machine, at the same time (interleaved:
for each repeat and method, the release's loop and then ours), not from figures taken
on different days.

The release: its training modules are imported from ``--release DIR`` and its own
functions run unchanged (``train_lapo.train_lapo``, ``train_laom.train_laom``,
``train_laom_labels.train_laom``) on a synthetic release-layout HDF5 file. What the
release imports but a LAM loop never uses is stubbed in ``sys.modules`` (``wandb``,
``pyrallis``, ``torchinfo``; ``shimmy``, ``vector_quantize_pytorch`` and ``src.dcs``
only when missing). The stub ``wandb.log`` records ``time.perf_counter()`` at each
per-step log (the last line of the release's step) and ends the loop by raising after
``--warmup`` + ``--updates`` steps; the rate is batch x updates over the time between the
last warm-up log and the last log. The release's own ``throughput`` field over the same
steps is printed beside it as a check. torchvision comes from the environment or from
``DIR/.deps``; without it a stand-in written here supplies the few transforms the
release's augmentations call, and the table says so (augmentation cost is then only
approximately the release's).

The release autocasts to bf16 as written (``torch.autocast(DEVICE, dtype=torch.bfloat16)``,
DEVICE "cpu" here). On a CPU without fast bf16 that is slow, so ``--release-fp32`` adds a
row where ``torch.autocast`` inside the release's modules is a no-op context.

Ours: ``measure()`` of benchmarks/lam_speed.py, i.e. exactly what lam_speed reports, with
that script's shapes. The release's train_lapo.py trains plain LAPO (no FSQ, no
augmentation), so the LAPO row's ours is lapo-nofsq with augmentation off; ``--ours-lapo
lapo`` takes lam_speed's own LAPO row instead (FSQ (2, 2, 4), augmentation on at ``ref``).

Shapes: ``ref`` is lam_speed's REF (batch 64, 3 stacked 64 px frames, encoder scale 1,
2 res blocks, latent 256, heads 256, offset 10, augmentations on), mapped onto the
release's config dataclasses (the mapping is printed); ``paper`` is our
laom/configs/paper presets against the release's configs/*.yaml; ``tiny`` is ref at
batch 8, latent and heads 32, 1 res block (a smoke test, not a measurement).

glibc's allocator is tuned once at the start (laom's setup_runtime does it on our first
run anyway and it cannot be undone), so both sides run under the same allocator.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import gc
import importlib
import importlib.util
import io
import json
import math
import os
import random
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from laom.data.sampler import FrameData, load_frames
from laom.methods import lam_reads_labels
from laom.models.device import autocast_dtype, resolve_device
from laom.training.config import parse_config
from laom.training.lam import CONFIGS, LAMConfig
from laom.training.presets import preset_file
from laom.training.runtime import tune_malloc

PROG = "release_speed"
RELEASE = "github.com/dunnolab/laom"
METHODS = ("lapo", "laom", "laom-labels")
# method -> (release module, its training function, its config dataclass, its yaml)
RELEASE_LOOPS = {
    "lapo": ("train_lapo", "train_lapo", "LAPOConfig", "lapo.yaml"),
    "laom": ("train_laom", "train_laom", "LAOMConfig", "laom.yaml"),
    "laom-labels": ("train_laom_labels", "train_laom", "LAOMConfig", "laom-labels.yaml"),
}
TINY = ["--batch_size", "8", "--latent_dim", "32", "--head_dim", "32", "--num_res_blocks", "1"]
DEEP = (16, 32, 64, 128, 256)  # the release's encoder_deep: True
SHALLOW = (16, 32, 32)  # encoder_deep: False


class StopBenchmark(Exception):
    """Raised from the stub wandb.log to leave the release's loop after the timed steps."""


# -- stubs for what the release imports but a LAM loop does not need -------------------


class StepClock:
    """Times the release's steps through its per-step ``wandb.log`` call."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.times: list[float] = []
        self.logged: list[float] = []  # the release's own "throughput" field

    def log(self, row: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        key = next((k for k in row if k.endswith("/throughput")), None)
        if key is None:  # per-epoch image logs
            return
        self.times.append(time.perf_counter())
        self.logged.append(float(row[key]))
        if len(self.times) >= self.steps:
            raise StopBenchmark


_clock: StepClock | None = None


def _stub_log(row: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    if _clock is not None:
        _clock.log(row, *args, **kwargs)


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _unavailable(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(f"{PROG}: stubbed out; not part of a LAM training loop")


class _Run:
    def finish(self) -> None:
        pass


def install_stubs() -> list[str]:
    """Put stand-ins for the release's logging/config/env imports into sys.modules;
    returns the names stubbed."""
    stubbed = []
    sys.modules["wandb"] = _module(
        "wandb", log=_stub_log, init=lambda *a, **k: _Run(), Image=lambda *a, **k: None
    )
    sys.modules["pyrallis"] = _module(
        "pyrallis", field=dataclasses.field, wrap=lambda *a, **k: lambda f: f
    )
    sys.modules["torchinfo"] = _module("torchinfo", summary=lambda *a, **k: None)
    stubbed += ["wandb", "pyrallis", "torchinfo"]
    if _missing("shimmy"):
        sys.modules["shimmy"] = _module("shimmy", DmControlCompatibilityV0=_unavailable)
        stubbed.append("shimmy")
    if _missing("vector_quantize_pytorch"):  # FSQ: only the release's unused LAPOFSQ
        sys.modules["vector_quantize_pytorch"] = _module(
            "vector_quantize_pytorch", FSQ=_unavailable
        )
        stubbed.append("vector_quantize_pytorch")
    return stubbed


# -- torchvision: the real one if it can be had, else a stand-in ------------------------


def import_torchvision(deps: Path | None) -> str:
    """Import torchvision for the release's augmentations; returns where it came from.

    The registry's torchvision wheel is a CUDA build: beside a CPU torch its compiled
    ops do not load and its import fails registering their meta kernels. The release
    uses only pure-Python transforms, so that registration is skipped on a retry.
    """
    if deps is not None and deps.is_dir():
        sys.path.insert(0, str(deps))
    if _missing("torchvision"):
        install_torchvision_standin()
        return "stand-in (torchvision not found; augmentation cost approximate)"
    try:
        import torchvision.transforms
        import torchvision.utils
    except RuntimeError:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = _module("torchvision._meta_registrations")
        import torchvision.transforms
        import torchvision.utils
    import torchvision

    return f"torchvision {torchvision.__version__} ({Path(torchvision.__file__).parent.parent})"


def install_torchvision_standin() -> None:
    """The transforms src/augmentations.py calls, written here: one random rotation or
    perspective per call for the whole batch, bilinear grid_sample, zero fill."""

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"

    def pad(x: torch.Tensor, padding: int, padding_mode: str = "constant") -> torch.Tensor:
        mode = {"edge": "replicate", "constant": "constant", "reflect": "reflect"}[padding_mode]
        return F.pad(x, [padding] * 4, mode=mode)

    def center_crop(x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        h, w = output_size
        top, left = round((x.shape[-2] - h) / 2), round((x.shape[-1] - w) / 2)
        return x[..., top : top + h, left : left + w]

    def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(
            theta.expand(x.shape[0], 2, 3).to(x.dtype), list(x.shape), align_corners=False
        )
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    class RandomRotation:
        def __init__(self, degrees: float, interpolation: Any = None, expand: bool = False) -> None:
            self.degrees = degrees

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            a = math.radians(float(torch.empty(1).uniform_(-self.degrees, self.degrees)))
            return warp(
                x, torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
            )

    class RandomPerspective:
        def __init__(self, distortion_scale: float = 0.5, p: float = 0.5) -> None:
            self.scale, self.p = distortion_scale, p

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            if float(torch.rand(1)) >= self.p:
                return x
            src = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
            dst = src - src.sign() * torch.rand(4, 2) * self.scale
            rows = []  # homography dst -> src from the 4 corner pairs
            for (u, v), (sx, sy) in zip(dst.tolist(), src.tolist(), strict=True):
                rows.append([u, v, 1, 0, 0, 0, -sx * u, -sx * v])
                rows.append([0, 0, 0, u, v, 1, -sy * u, -sy * v])
            c = torch.linalg.solve(torch.tensor(rows), src.reshape(-1, 1)).flatten().tolist()
            n, _, h, w = x.shape
            ys, xs = torch.meshgrid(
                torch.linspace(-1 + 1 / h, 1 - 1 / h, h),
                torch.linspace(-1 + 1 / w, 1 - 1 / w, w),
                indexing="ij",
            )
            den = c[6] * xs + c[7] * ys + 1
            grid = torch.stack(
                [(c[0] * xs + c[1] * ys + c[2]) / den, (c[3] * xs + c[4] * ys + c[5]) / den], -1
            )
            grid = grid.to(x.dtype).expand(n, h, w, 2)
            return F.grid_sample(
                x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )

    def make_grid(images: list[torch.Tensor], nrow: int = 8, padding: int = 2) -> torch.Tensor:
        return torch.cat(
            [
                torch.stack(images[i : i + nrow], 0).flatten(0, 1)
                for i in range(0, len(images), nrow)
            ],
            -1,
        )

    functional = _module("torchvision.transforms.functional", pad=pad, center_crop=center_crop)
    transforms = _module(
        "torchvision.transforms",
        functional=functional,
        InterpolationMode=InterpolationMode,
        RandomRotation=RandomRotation,
        RandomPerspective=RandomPerspective,
    )
    utils = _module("torchvision.utils", make_grid=make_grid)
    tv = _module("torchvision", transforms=transforms, utils=utils, __version__="stand-in")
    tv.__path__ = []
    sys.modules.update(
        {"torchvision": tv, "torchvision.transforms": transforms,
         "torchvision.transforms.functional": functional, "torchvision.utils": utils}
    )  # fmt: skip


# -- the release checkout ----------------------------------------------------------------


def fail(message: str) -> None:
    """One line on stderr and exit 2, before any work."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_release(path: str | None) -> Path:
    """The checkout, or a one-line error and exit 2 before any work."""
    if not path:
        why = "missing"
    else:
        root = Path(path)
        lacks = [f for f in ("train_lapo.py", "src/nn.py") if not (root / f).is_file()]
        if not lacks:
            return root.resolve()
        why = (
            f"{path}: no {' or '.join(lacks)} there"
            if root.is_dir()
            else f"{path}: no such directory"
        )
    print(f"{PROG}: error: --release DIR: {why}; expected a checkout of {RELEASE}", file=sys.stderr)
    raise SystemExit(2)


def import_release(root: Path, methods: list[str]) -> dict[str, types.ModuleType]:
    """The release's training modules, imported from ``root`` as its scripts would be
    (``root`` first on sys.path, so ``src`` is its package)."""
    sys.path.insert(0, str(root))
    src = importlib.import_module("src")
    if not any(Path(p).resolve() == root / "src" for p in getattr(src, "__path__", [])):
        raise SystemExit(f"{PROG}: error: 'src' resolves to {src.__path__}, not {root / 'src'}")
    try:
        importlib.import_module("src.dcs.suite")
    except ImportError:  # the distracting-control suite: environments only
        for name in ("src.dcs.suite", "src.dcs"):
            sys.modules.pop(name, None)
        dcs = _module("src.dcs", __path__=[])
        dcs.suite = _module("src.dcs.suite", load=_unavailable)
        sys.modules.update({"src.dcs": dcs, "src.dcs.suite": dcs.suite})
    return {m: importlib.import_module(RELEASE_LOOPS[m][0]) for m in methods}


class _TorchWithoutAutocast(types.ModuleType):
    """``torch`` as seen from a release module under --release-fp32: autocast is a no-op."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def autocast(*args: Any, **kwargs: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


@contextlib.contextmanager
def release_precision(module: types.ModuleType, fp32: bool):
    """Run the release's loop as written (bf16 autocast) or with autocast disabled."""
    if fp32:
        module.torch = _TorchWithoutAutocast()
    try:
        yield
    finally:
        module.torch = torch


# -- shapes and the field mapping ------------------------------------------------------


def ours_for(method: str, ours_lapo: str) -> str:
    return ours_lapo if method == "lapo" else method


def ours_config(
    method: str, ours: str, shape: str, args: argparse.Namespace
) -> tuple[LAMConfig, list[str]]:
    """Our resolved config and the extra overrides passed to lam_speed.measure()."""
    import lam_speed

    extra = TINY[:] if shape == "tiny" else []
    if method == "lapo" and ours == "lapo-nofsq":
        extra += ["--use_aug", "false"]  # the release's train_lapo.py does not augment
    if args.batch:
        extra += ["--batch_size", str(args.batch)]
    preset = None if shape in ("ref", "tiny") else preset_file(shape, f"lam-{ours}")
    overrides = (lam_speed.REF if shape in ("ref", "tiny") else []) + extra
    if shape in ("ref", "tiny") and lam_reads_labels(ours):
        overrides += ["--labeled_batch_size", str(args.labeled_batch)]
    return parse_config(CONFIGS[ours], preset, overrides), extra


def release_fields(method: str, cfg: LAMConfig, shape: str, root: Path) -> dict[str, Any]:
    """The release's config fields: from our config at ref/tiny, from its yaml at paper."""
    if shape == "paper":
        loaded = yaml.safe_load((root / "configs" / RELEASE_LOOPS[method][3]).read_text())
        return dict(loaded["lapo"])
    channels = tuple(cfg.encoder_channels)
    if channels not in (DEEP, SHALLOW):
        raise SystemExit(
            f"{PROG}: error: encoder_channels {channels}: the release builds only {DEEP} or {SHALLOW}"
        )
    fields = {
        "batch_size": cfg.batch_size,
        "frame_stack": cfg.frame_stack,
        "future_obs_offset": cfg.future_offset,
        "encoder_scale": cfg.encoder_scale,
        "encoder_num_res_blocks": cfg.num_res_blocks,
        "encoder_deep": channels == DEEP,
        "latent_action_dim": cfg.latent_dim,
        "learning_rate": cfg.learning_rate,
        "weight_decay": cfg.weight_decay,
        "grad_norm": cfg.grad_clip,
        "warmup_epochs": 3,  # the release's yaml; any value times the same
    }
    if method != "lapo":
        if cfg.head_blocks != 3:
            raise SystemExit(
                f"{PROG}: error: head_blocks {cfg.head_blocks}: the release's heads have 3 blocks"
            )
        fields.update(
            act_head_dim=cfg.head_dim, obs_head_dim=cfg.head_dim, use_aug=cfg.use_aug,
            target_tau=cfg.target_tau, target_update_every=1, encoder_norm_out=False,
        )  # fmt: skip
    if method == "laom-labels":
        fields.update(labeled_batch_size=cfg.labeled_batch_size, labeled_loss_coef=cfg.label_coef)
    return fields


MAPPING = [  # ours -> release, as release_fields() applies it
    ("batch_size", "batch_size"), ("frame_stack", "frame_stack"), ("future_offset", "future_obs_offset"),
    ("encoder_scale", "encoder_scale"), ("num_res_blocks", "encoder_num_res_blocks"),
    ("encoder_channels", "encoder_deep"), ("latent_dim", "latent_action_dim"),
    ("head_dim", "act_head_dim, obs_head_dim"), ("head_blocks", "(3, fixed)"), ("use_aug", "use_aug"),
    ("target_tau", "target_tau"), ("labeled_batch_size", "labeled_batch_size"),
    ("label_coef", "labeled_loss_coef"), ("learning_rate", "learning_rate"), ("grad_clip", "grad_norm"),
]  # fmt: skip


def print_mapping(method: str, ours: str, cfg: LAMConfig, fields: dict[str, Any]) -> None:
    print(
        f"  {method}: ours {ours} -> release {'.'.join(RELEASE_LOOPS[method][:2])}({RELEASE_LOOPS[method][2]})"
    )
    for mine, theirs in MAPPING:
        keys = [k.strip() for k in theirs.split(",")]
        if theirs.startswith("(") and method != "lapo":
            print(f"    {mine:18s} {getattr(cfg, mine)!s:>14s} -> release {theirs}")
        elif any(k in fields for k in keys):
            shown = ", ".join(f"{k}={fields[k]}" for k in keys if k in fields)
            print(f"    {mine:18s} {getattr(cfg, mine)!s:>14s} -> {shown}")
    if method == "lapo":
        fsq = tuple(cfg.fsq_levels) or "none"
        print(
            f"    {'fsq_levels':18s} {fsq!s:>14s} -> (the release's train_lapo builds LAPO: none)"
        )
        print(f"    {'use_aug':18s} {cfg.use_aug!s:>14s} -> (train_lapo.py has no augmentation)")
    dtype = autocast_dtype(cfg.precision, resolve_device(cfg.device)) or torch.float32
    ours_precision = f"{cfg.precision}: {str(dtype).removeprefix('torch.')}"
    print(
        f"    {'precision':18s} {ours_precision:>14s} -> torch.autocast(DEVICE, bfloat16) as written"
    )


# -- data ------------------------------------------------------------------------------


def trajectories_for(batch: int, steps: int, length: int, offset: int) -> int:
    """Enough trajectories that the release's first epoch covers every step (no epoch
    boundary, no short last batch inside the timed window)."""
    return max(8, math.ceil((steps + 1) * batch / (length - offset)) + 1)


# -- one measurement of each side ------------------------------------------------------


def run_release(
    module: types.ModuleType,
    method: str,
    fields: dict[str, Any],
    files: dict[str, Path],
    args: argparse.Namespace,
    fp32: bool,
    updates: int,
) -> dict[str, float]:
    """samples/s of the release's own loop over ``updates`` steps after ``--warmup``."""
    global _clock
    cls = getattr(module, RELEASE_LOOPS[method][2])
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in fields.items() if k in names}
    values.update(num_epochs=10**6, data_path=str(files["data"]))
    if "labeled_data_path" in names:
        values.update(labeled_data_path=str(files["labeled"]), eval_data_path=None)
    config = cls(**values)
    module.set_seed(0)  # as the release's train() does before training
    clock = StepClock(args.warmup + updates)
    _clock = clock
    out = io.StringIO()
    try:
        with (
            release_precision(module, fp32),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(out),
        ):
            getattr(module, RELEASE_LOOPS[method][1])(config)
    except StopBenchmark:
        pass
    finally:
        _clock = None
        gc.collect()
    if len(clock.times) < args.warmup + updates:
        raise SystemExit(
            f"{PROG}: error: the release's {method} loop ended after {len(clock.times)} steps"
        )
    if args.verbose:
        print(out.getvalue(), end="")
    w, n, b = args.warmup, updates, config.batch_size
    rate = b * n / (clock.times[w + n - 1] - clock.times[w - 1])
    # the release's own field: tokens/(time.time() - start) after k steps
    elapsed = [b * (k + 1) / v for k, v in enumerate(clock.logged)]
    logged = b * n / (elapsed[w + n - 1] - elapsed[w - 1])
    return {"samples_per_s": rate, "logged_samples_per_s": logged, "batch_size": b}


def run_ours(
    method: str,
    shape: str,
    extra: list[str],
    data: FrameData,
    labeled: FrameData,
    args: argparse.Namespace,
) -> dict[str, float]:
    import lam_speed

    ns = argparse.Namespace(
        warmup=args.warmup, updates=args.updates, repeats=1, threads=args.threads,
        bound=False, labeled_batch=args.labeled_batch,
    )  # fmt: skip
    mshape = "ref" if shape == "tiny" else shape
    speed = lam_speed.measure(method, mshape, extra, data, labeled, ns)
    sps, per_cpu = speed.samples_per_s, speed.per_cpu_second
    return {"samples_per_s": sps, "per_cpu_second": per_cpu}


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--release", help=f"a checkout of {RELEASE}")
    p.add_argument(
        "--deps", help="extra path for the release's torchvision (default: DIR/.deps if present)"
    )
    p.add_argument("--shape", choices=("ref", "paper", "tiny"), default="ref")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--ours-lapo", choices=("lapo-nofsq", "lapo"), default="lapo-nofsq",
                   help="our LAPO row: lapo-nofsq without augmentation (what the release's train_lapo "
                        "computes) or lam_speed's lapo (FSQ; augmentation on at ref)")  # fmt: skip
    p.add_argument("--updates", type=int, default=10, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (at least 1)")
    p.add_argument(
        "--repeats", type=int, default=2, help="runs of each side per method; the best counts"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument(
        "--labeled-batch", type=int, default=64, help="labelled batch of LAOM+labels (ref, tiny)"
    )
    p.add_argument("--length", type=int, default=500, help="steps per synthetic trajectory")
    p.add_argument(
        "--release-fp32", action="store_true", help="also run the release with autocast disabled"
    )
    p.add_argument(
        "--bf16-updates", type=int, default=None,
        help="timed steps of the release as written (bf16 autocast; default --updates). On a CPU "
             "without fast bf16 a step takes seconds, so fewer; 0 skips that row (needs --release-fp32)",
    )  # fmt: skip
    p.add_argument(
        "--batch", type=int, default=0,
        help="batch size of both sides (0: the shape's); the paper's 512 does not fit in 24 GB "
             "at fp32, its model shape does at a smaller batch",
    )  # fmt: skip
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--verbose", action="store_true", help="show what the release prints")
    args = p.parse_args(argv)
    args.root = check_release(args.release)
    args.methods = args.methods.split(",")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        fail(f"--methods {','.join(unknown)}: expected some of {','.join(METHODS)}")
    if args.batch < 0:
        fail(f"--batch {args.batch}: expected an integer >= 1, or 0 for the shape's own")
    for flag in ("warmup", "updates", "repeats"):
        if getattr(args, flag) < 1:
            fail(f"--{flag} {getattr(args, flag)}: expected an integer >= 1")
    if args.bf16_updates is None:
        args.bf16_updates = args.updates
    if args.bf16_updates < 0 or (args.bf16_updates == 0 and not args.release_fp32):
        fail(f"--bf16-updates {args.bf16_updates}: expected an integer >= 1, or 0 with --release-fp32")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_malloc()
    stubbed = install_stubs()
    deps = Path(args.deps) if args.deps else args.root / ".deps"
    tv = import_torchvision(deps)
    modules = import_release(args.root, args.methods)
    device = modules[args.methods[0]].DEVICE
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, cpu {os.cpu_count()}")  # fmt: skip
    print(
        f"release {args.root} (device {device}); stubbed: {', '.join(stubbed)}; torchvision: {tv}"
    )
    print(
        f"shape {args.shape}: {args.warmup} warm-up + {args.updates} timed steps, best of {args.repeats}"
    )

    plans = []
    print("field mapping (ours -> release):")
    for method in args.methods:
        ours = ours_for(method, args.ours_lapo)
        cfg, extra = ours_config(method, ours, args.shape, args)
        fields = release_fields(method, cfg, args.shape, args.root)
        if args.batch:
            fields["batch_size"] = args.batch
        print_mapping(method, ours, cfg, fields)
        plans.append((method, ours, cfg, extra, fields))

    rows = []
    with tempfile.TemporaryDirectory(prefix="release_speed-") as tmp:
        from data_path_speed import write_file

        batch = max(max(p[2].batch_size, p[4]["batch_size"]) for p in plans)
        offset = max(max(p[2].future_offset, p[4]["future_obs_offset"]) for p in plans)
        n = trajectories_for(batch, args.warmup + args.updates, args.length, offset)
        files = {"data": Path(tmp) / "data.hdf5", "labeled": Path(tmp) / "labeled.hdf5"}
        write_file(files["data"], n, args.length, 64)
        write_file(files["labeled"], 2, args.length, 64)
        data, labeled = load_frames(files["data"]), load_frames(files["labeled"])
        print(
            f"data: {n} x {args.length} random 64 px frames (release layout), labelled 2 x {args.length}"
        )
        for method, ours, cfg, extra, fields in plans:
            runs: dict[str, list[dict[str, float]]] = {
                "release": [],
                "release_fp32": [],
                "ours": [],
            }
            for _ in range(args.repeats):
                random.seed(0)
                np.random.seed(0)  # noqa: NPY002 - the release draws from the legacy global RNG
                if args.bf16_updates:
                    runs["release"].append(
                        run_release(modules[method], method, fields, files, args, False, args.bf16_updates)
                    )
                if args.release_fp32:
                    runs["release_fp32"].append(
                        run_release(modules[method], method, fields, files, args, True, args.updates)
                    )
                runs["ours"].append(run_ours(ours, args.shape, extra, data, labeled, args))
            best = {k: max(r["samples_per_s"] for r in v) for k, v in runs.items() if v}
            logged = {
                k: max(r["logged_samples_per_s"] for r in v)
                for k, v in runs.items()
                if v and k != "ours"
            }
            rows.append({"method": method, "ours": ours, "ours_batch": cfg.batch_size,
                         "release_batch": fields["batch_size"], "best": best, "release_logged": logged,
                         "runs": runs})  # fmt: skip
            shown = "  ".join(
                f"{k} {v:.1f} (its own throughput field: {logged[k]:.1f})"
                for k, v in best.items()
                if k != "ours"
            )
            print(f"  {method}: {shown}  ours {best['ours']:.1f} samples/s", flush=True)

    print()
    sides = [k for k, name in (("release", "bf16"), ("release_fp32", "fp32")) if rows and k in rows[0]["best"]]
    names = {"release": "bf16", "release_fp32": "fp32"}
    head = f"{'method':12s} {'batch':>9s}" + "".join(f" {'release ' + names[k]:>12s}" for k in sides)
    head += f" {'ours':>10s}" + "".join(f" {'ours/' + names[k]:>9s}" for k in sides)
    print(head + "   (samples/s; batch = release/ours)")
    for row in rows:
        b = row["best"]
        batches = f"{row['release_batch']}/{row['ours_batch']}"
        line = f"{row['method']:12s} {batches:>9s}" + "".join(f" {b[k]:12.1f}" for k in sides)
        line += f" {b['ours']:10.1f}" + "".join(f" {b['ours'] / b[k]:8.2f}x" for k in sides)
        print(line)
    if tv.startswith("stand-in"):
        print("note: the release's augmentations ran on this script's torchvision stand-in; "
              f"install torchvision into {deps} (see the docstring) for the real cost")  # fmt: skip
    if args.json:
        out = {
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
            "shape": args.shape, "warmup": args.warmup, "updates": args.updates, "repeats": args.repeats,
            "release": str(args.root), "torchvision": tv, "stubbed": stubbed, "rows": rows,
        }  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
