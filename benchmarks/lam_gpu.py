"""The LAM stage at the paper preset, run for a fixed wall-clock time (meant for a GPU).

    python benchmarks/lam_gpu.py --out lam_gpu.json                   # synthetic frames, speed only
    python benchmarks/lam_gpu.py --data train.hdf5 --eval-data test.hdf5 --minutes 8 --out lam_gpu.json
    python benchmarks/lam_gpu.py --method laom-labels --data train.hdf5 --labeled labeled.hdf5
    python benchmarks/lam_gpu.py --device cpu --shape tiny --minutes 0.1    # CPU smoke run

Why: the paper trains its LAMs for 10 epochs of 5M transitions at batch 512 on one GPU.
This project has only measured CPU runs of shrunken presets, so the cost of the real
setting and how its probe falls early on are unknown. One prepared run answers both
within a fixed budget (``--minutes``, default 8, counting everything from data loading
to the last probe), so it fits a short loan of a GPU machine.

What runs is the stage itself: the config ``laom train lam --config paper`` builds
(``--shape tiny`` shrinks the model for a smoke run), :class:`LAMTrainer`'s update step,
the stage's data loading and held-out split, its metrics log and its closed-form probe
curve (:class:`ProbeCurve`); only checkpoints are left out. With ``--data`` the run
follows the preset's schedule on that file and stops early if the schedule ends; without
it, synthetic frames of the paper's shape (``laom.training.synthetic``, 64 px, frame
stack 3) stand in, the schedule is the paper's length, and the probe is skipped (the
figures are then speed only).

Recorded (printed as plain lines and written to ``--out`` as JSON): samples/s after the
warm-up updates with probe time left out; the probe's MSE and MSE / chance against
training samples at a few points (the first before training, the last at the end; on
``--eval-data`` or the stage's held-out trajectories); the time of one epoch over the
paper's 5M transitions, extrapolated from the measured step time; the device, torch
version, precision (``--precision auto``: bf16 autocast on CUDA) and every config field.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from laom.data.sampler import FrameData
from laom.errors import LaomError
from laom.methods import lam_reads_labels
from laom.models.device import Runtime, resolve_device
from laom.outputs import check_output
from laom.training.config import config_to_dict, parse_config, resolve_preset
from laom.training.lam import (
    CONFIGS,
    METHODS,
    PROBE_CURVE_FILE,
    LAMConfig,
    LAMTrainer,
    ProbeCurve,
    load_training_data,
    validate,
)
from laom.training.metrics import read_jsonl
from laom.training.presets import PAPER_TRANSITIONS
from laom.training.rundir import RunDir
from laom.training.runtime import setup_runtime
from laom.training.synthetic import render_trajectory
from laom.training.trainlog import TrainLog

PRESET = "paper"
PAPER_BATCH = 512
# A model small enough for a CPU smoke run of a few seconds: every code path of the
# paper shape (three encoder stages, heads, online probe) at a fraction of its cost.
TINY = ["--latent_dim", "32", "--head_dim", "64", "--head_blocks", "1", "--encoder_scale", "1",
        "--num_res_blocks", "1", "--encoder_channels", "4,8,8", "--probe_curve_samples", "2000"]  # fmt: skip
TINY_BATCH = 16
MIN_TIMED = 2  # timed updates run even when the limit is spent before them
# Synthetic frames: (trajectories, steps, image size). Enough frames that batches are
# gathered from memory as a real file's are, few enough to render in seconds.
SYNTHETIC = {"paper": (8, 500, 64), "tiny": (4, 100, 32)}


class UsageError(Exception):
    """Bad input, found before any work starts: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's usage dump would span lines
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=METHODS, default="laom")
    p.add_argument("--data", default="", help="training file; none = synthetic frames (speed only)")
    p.add_argument(
        "--eval-data", default="", help="probe test file; none = held-out trajectories of --data"
    )
    p.add_argument("--labeled", default="", help="labelled file (a labelled LAM, e.g. laom-labels, with --data)")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock limit of the whole run")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help=f"0 = the preset's ({PAPER_BATCH}; {TINY_BATCH} at tiny)",
    )
    p.add_argument(
        "--shape",
        choices=("paper", "tiny"),
        default="paper",
        help="tiny: a small model for a CPU smoke run",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="updates left out of samples/s (allocator, kernel choice)",
    )
    p.add_argument(
        "--probes", type=int, default=4, help="probe points after the one before training"
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="read --data through a bounded cache (larger than RAM)",
    )
    p.add_argument("--out", default="lam_gpu.json", help="JSON file of the figures")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> LAMConfig:
    """The config the stage would run, refused with one line naming the flag when the
    input is bad: everything here is checked before data is loaded or a model built."""
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise UsageError(f"--minutes {args.minutes:g}: expected a positive number")
    if args.batch_size < 0:
        raise UsageError(
            f"--batch-size {args.batch_size}: expected a positive number (0 = the preset's)"
        )
    if args.warmup < 0:
        raise UsageError(f"--warmup {args.warmup}: expected 0 or more")
    if args.probes < 1:
        raise UsageError(f"--probes {args.probes}: expected 1 or more")
    for flag, value in (
        ("--eval-data", args.eval_data),
        ("--labeled", args.labeled),
        ("--stream", args.stream),
    ):
        if value and not args.data:
            raise UsageError(f"{flag}: only with --data (without it the frames are synthetic)")
    labelled = ", ".join(m for m in METHODS if lam_reads_labels(m))
    if args.labeled and not lam_reads_labels(args.method):
        raise UsageError(f"--labeled: only with --method {labelled} (got {args.method})")
    if args.data and lam_reads_labels(args.method) and not args.labeled:
        raise UsageError(f"--labeled: --method {args.method} with --data needs the labelled file")
    overrides = list(TINY) if args.shape == "tiny" else []
    batch = args.batch_size or (TINY_BATCH if args.shape == "tiny" else 0)
    if batch:
        overrides += ["--batch_size", str(batch)]
    overrides += ["--device", args.device, "--progress", "false"]
    try:
        preset = resolve_preset(PRESET, f"lam-{args.method}")
        cfg = parse_config(CONFIGS[args.method], preset, overrides, data=args.data or None,
                           eval_data=args.eval_data or None, labeled=args.labeled or None)  # fmt: skip
        cfg.stream = args.stream
        cfg.out = "(a temporary folder)"  # validate() only asks that there is one
        if args.data:
            validate(cfg)  # the stage's own checks: files, device, lengths, batch vs data
        else:
            resolve_device(cfg.device)
        check_output(args.out, "--out", create_parents=True)
    except LaomError as exc:  # the stage names its field; this script's flag is spelt with a dash
        raise UsageError(str(exc).replace("--batch_size", "--batch-size")) from None
    return cfg


def synthetic_frames(trajectories: int, length: int, img_hw: int, seed: int) -> FrameData:
    """The moving-square task's frames in memory: real pixels and motion at the paper's
    frame size, so the data path and the model do what they do on a collected file."""
    rng = np.random.default_rng(seed)
    parts = [
        render_trajectory(rng, length, img_hw, max(3, img_hw // 8)) for _ in range(trajectories)
    ]
    return FrameData(
        frames=np.concatenate([obs.transpose(0, 3, 1, 2) for obs, _, _ in parts]),
        actions=np.concatenate([a for _, _, a in parts]),
        states=np.concatenate([s for _, s, _ in parts]),
        traj_offsets=np.arange(0, trajectories * length + 1, length, dtype=np.int64),
        attrs={"domain_name": "square", "task_name": "move"},
        path="(synthetic)",
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read covers what was launched before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Clock:
    """Training time after the warm-up, apart from the probes' time."""

    updates: int = 0
    seconds: float = 0.0

    def samples_per_s(self, batch: int) -> float:
        return batch * self.updates / self.seconds if self.seconds > 0 else float("nan")


def probe_points(train_budget: float, count: int) -> list[float]:
    """Training seconds at which to probe: doubling intervals ending at the budget, so the
    points sit evenly on the log axis the probe curves are drawn on."""
    return [train_budget / 2 ** (count - 1 - i) for i in range(count)]


def run(args: argparse.Namespace, cfg: LAMConfig) -> dict[str, Any]:
    """Train until the time limit (or the schedule's end), probing on the way."""
    start = time.perf_counter()
    deadline = start + 60 * args.minutes
    runtime: Runtime = setup_runtime(cfg)
    if args.data:
        data, labeled, probe_train, probe_test = load_training_data(cfg)
        probing = True
    else:
        trajectories, length, hw = SYNTHETIC[args.shape]
        data = synthetic_frames(trajectories, length, hw, cfg.seed)
        labeled = (
            synthetic_frames(2, length, hw, cfg.seed + 1) if lam_reads_labels(cfg.method) else None
        )
        probe_train = probe_test = data
        probing = False
        # the paper's schedule length, so the time limit ends the run and not the schedule
        cfg.total_updates = math.ceil(cfg.epochs * PAPER_TRANSITIONS / cfg.batch_size)
    load_s = time.perf_counter() - start
    trainer = LAMTrainer(cfg, data, labeled, runtime)
    build_s = time.perf_counter() - start - load_s
    device = runtime.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    with tempfile.TemporaryDirectory(prefix="lam_gpu_") as tmp:
        cfg.out = tmp
        cfg.probe_every = 1  # ProbeCurve probes whenever it is called; this loop picks when
        run_dir = RunDir(tmp)
        run_dir.prepare(cfg)
        log = TrainLog(
            run_dir, cfg, trainer.total, 0, trainer.sampler.batch_size, desc=f"lam {cfg.method}"
        )
        curve = ProbeCurve(run_dir.path / PROBE_CURVE_FILE, cfg, trainer.total, cfg.batch_size)
        probe_s: list[float] = []

        def probe(update: int) -> None:
            sync(device)
            t = time.perf_counter()
            curve(update, trainer.model, probe_train, probe_test, runtime, log)
            probe_s.append(time.perf_counter() - t)
            log.progress.exclude(probe_s[-1])  # as the stage's loop leaves its probe time out
            row = read_jsonl(curve.path)[-1]
            print(f"probe: update {update}, {row['samples']} samples, action MSE {row['action_probe_mse']:.4g}, "
                  f"chance {row['action_probe_baseline_mse']:.4g}, MSE/chance {row['action_probe_rel']:.3f} "
                  f"({probe_s[-1]:.1f} s)", flush=True)  # fmt: skip

        trainer.model.train()
        if probing:
            probe(0)
        update = 0
        clock = Clock()
        finished = False
        try:
            t = time.perf_counter()
            # The warm-up and MIN_TIMED updates run even past the limit: a figure needs them.
            while update < min(args.warmup, trainer.total):
                update = _step(trainer, log, update)
            sync(device)
            warmup_s = time.perf_counter() - t
            warmup_updates = update
            # Room for the probes still to come, each costing what the first did (x1.5).
            probe_cost = 1.5 * (probe_s[0] if probe_s else 0.0)
            count = args.probes if probing else 0
            while count > 1 and deadline - time.perf_counter() - count * probe_cost <= 0:
                count -= 1
            budget = max(0.0, deadline - time.perf_counter() - count * probe_cost)
            points = probe_points(budget, count) if count else [budget]
            for point in points:
                t = time.perf_counter()
                while update < trainer.total and (
                    clock.seconds + time.perf_counter() - t < point or clock.updates < MIN_TIMED
                ):
                    update = _step(trainer, log, update)
                    clock.updates += 1
                sync(device)
                clock.seconds += time.perf_counter() - t
                finished = update >= trainer.total
                if probing and update not in curve.done:
                    probe(update)
                if finished:
                    break
        finally:
            log.close()
        metrics = read_jsonl(run_dir.metrics_path)
        curve_rows = read_jsonl(curve.path)

    wall_s = time.perf_counter() - start
    sps = clock.samples_per_s(cfg.batch_size)
    step_s = clock.seconds / clock.updates if clock.updates else float("nan")
    epoch_updates = math.ceil(PAPER_TRANSITIONS / cfg.batch_size)
    epoch_s = PAPER_TRANSITIONS / sps if clock.updates else float("nan")
    precision = str(runtime.amp_dtype or torch.float32).replace("torch.", "")
    return {
        "method": cfg.method,
        "preset": PRESET,
        "shape": args.shape,
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "precision": precision,
        "channels_last": cfg.channels_last,
        "batch_size": cfg.batch_size,
        "minutes": args.minutes,
        "data": args.data or f"synthetic: {data.num_trajectories} x {data.num_frames // data.num_trajectories} "
                             f"frames of {data.img_hw} px (laom.training.synthetic)",
        "eval_data": args.eval_data or None,
        "labeled": args.labeled or None,
        "transitions": int(len(data.valid_steps)),
        "load_s": load_s,
        "build_s": build_s,
        "warmup_updates": warmup_updates,
        "warmup_s": warmup_s,
        "updates": update,
        "timed_updates": clock.updates,
        "train_s": clock.seconds,
        "probe_s": sum(probe_s),
        "wall_s": wall_s,
        "step_s": step_s,
        "samples_per_s": sps,
        "epoch_transitions": PAPER_TRANSITIONS,
        "epoch_updates": epoch_updates,
        "epoch_s": epoch_s,
        "epoch_note": f"extrapolated: {PAPER_TRANSITIONS:,} transitions / measured samples/s at batch {cfg.batch_size}"
                      + ("" if cfg.batch_size == PAPER_BATCH else f" (not the paper's {PAPER_BATCH})")
                      + "; the stage's update step and metrics log, without probes and checkpoints",
        "preset_run_s": cfg.epochs * epoch_s,  # the preset's epochs over the paper's data
        "schedule_updates": trainer.total,
        "schedule_warmup_updates": trainer.warmup,
        "schedule_finished": finished,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "probe": {
            "done": probing,
            "why_not": None if probing else "no --data: synthetic frames measure speed only",
            "test_set": (args.eval_data or f"{cfg.holdout_fraction:.0%} held-out trajectories of --data") if probing else None,
            "points": "before training, then after training times doubling up to the limit",
            "curve": curve_rows,
        },
        "metrics": metrics,
        "config": config_to_dict(cfg) | {"out": None, "probe_every": None},  # this loop probes
    }  # fmt: skip


def _step(trainer: LAMTrainer, log: TrainLog, update: int) -> int:
    """One update of the stage and its metrics log (no checkpoints); returns updates done."""
    done = update + 1
    values, grad_norm = trainer.step(update, grad_norm=log.log_due(done))
    log.record(
        done, values, extra={"grad_norm": grad_norm, "lr": trainer.scheduler.get_last_lr()[0]}
    )
    return done


def report(result: dict[str, Any]) -> list[str]:
    """The figures as plain lines, the JSON's headline."""
    hours = result["epoch_s"] / 3600
    lines = [
        f"device: {result['device_name']} ({result['device']}), torch {result['torch']}, "
        f"precision {result['precision']}, batch {result['batch_size']}, {result['method']} at the "
        f"{result['preset']} preset{' (tiny shape)' if result['shape'] == 'tiny' else ''}",
        f"data: {result['data']}",
        f"setup: data {result['load_s']:.1f} s, model {result['build_s']:.1f} s, "
        f"warm-up {result['warmup_s']:.1f} s ({result['warmup_updates']} updates, left out of samples/s)",
        f"samples/s: {result['samples_per_s']:.1f} ({result['timed_updates']} updates after "
        f"{result['warmup_updates']} warm-up, {result['train_s']:.1f} s, probe time left out)",
        f"step: {result['step_s']:.4f} s",
        f"epoch of {result['epoch_transitions']:,} transitions ({result['epoch_updates']} updates at batch "
        f"{result['batch_size']}): {result['epoch_s']:.0f} s = {hours:.2f} h, extrapolated; "
        f"the preset's {result['config']['epochs']:g} epochs: {result['preset_run_s'] / 3600:.1f} h",
    ]
    probe = result["probe"]
    if not probe["done"]:
        lines.append(f"probe: skipped ({probe['why_not']})")
    else:
        for row in probe["curve"]:
            lines.append(f"probe curve: {row['samples']} samples, MSE {row['action_probe_mse']:.4g}, "
                         f"MSE/chance {row['action_probe_rel']:.3f}")  # fmt: skip
    if result["peak_gpu_memory_gb"] is not None:
        lines.append(f"peak GPU memory: {result['peak_gpu_memory_gb']:.1f} GiB")
    lines.append(f"wall: {result['wall_s']:.1f} s of {60 * result['minutes']:.0f} s"
                 f"{' (the schedule ended first)' if result['schedule_finished'] else ''}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 2 with one ``error:`` line on bad input, before any work."""
    try:
        args = parse_args(argv)
        cfg = build_config(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run(args, cfg)
    result["command"] = " ".join(
        ["benchmarks/lam_gpu.py", *(sys.argv[1:] if argv is None else argv)]
    )
    for line in report(result):
        print(line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
