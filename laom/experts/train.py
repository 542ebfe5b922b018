"""Training and evaluating state experts with stable-baselines3.

The paper's datasets are rollouts of experts acting on proprioceptive state, so anyone
reproducing it on a new task first needs such an expert. Training on CPU takes hours,
so the run folder is built to survive that: the best actor (by greedy evaluation
return) and the last one are written as compact ``.npz`` after every evaluation, every
evaluation is appended to ``evals.csv``, and the full SB3 model plus replay buffer are
kept so an interrupted run continues where it stopped instead of starting over.
"""

from __future__ import annotations

import csv
import json
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laom.errors import LaomError
from laom.experts.formats import BEST_NPZ, LAST_NPZ, RUN_META, from_sb3_model
from laom.experts.policy import Expert
from laom.outputs import atomic_path, atomic_write_text, check_output

ALGOS = ("sac", "td3")
MODEL_ZIP = "last_model.zip"
BUFFER_PKL = "replay_buffer.pkl"
EVALS_CSV = "evals.csv"
# Evaluation during training uses seeds far from the ones reported (0..N-1), so picking
# the best checkpoint does not tune on the evaluation episodes themselves.
TRAIN_EVAL_SEED = 100_000


@dataclass
class TrainConfig:
    """Hyperparameters of ``laom expert train``; defaults learn dm_control tasks on CPU."""

    task: str
    steps: int
    out: str
    algo: str = "sac"
    seed: int = 0
    eval_every: int = 10_000
    eval_episodes: int = 5
    learning_starts: int = 5_000
    batch_size: int = 256
    learning_rate: float = 3e-4
    net: list[int] = field(default_factory=lambda: [256, 256])
    train_freq: int = 1
    gradient_steps: int = 1
    buffer_size: int | None = None  # default: min(steps, 1M)
    gamma: float = 0.99
    tau: float = 0.005
    threads: int = 1
    restart: bool = False


def evaluate(expert: Expert, task: str, episodes: int, seed: int = 0) -> list[float]:
    """Greedy returns of ``episodes`` episodes, episode ``i`` reset with seed ``seed + i``."""
    from laom.envs.tasks import StateEnv, state_returns

    return state_returns(StateEnv(task, seed), episodes, seed, lambda _i: expert.act)


def _check_config(cfg: TrainConfig) -> None:
    from laom.envs.tasks import parse_task

    parse_task(cfg.task, flag="TASK")
    if cfg.algo not in ALGOS:
        raise LaomError(f"--algo {cfg.algo!r}: expected one of {', '.join(ALGOS)}")
    for name in ("steps", "eval_every", "eval_episodes", "batch_size", "train_freq", "gradient_steps", "threads"):
        if getattr(cfg, name) < 1:
            raise LaomError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected an integer >= 1")
    for name in ("learning_starts", "seed"):
        if getattr(cfg, name) < 0:
            raise LaomError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: expected an integer >= 0")
    if not (math.isfinite(cfg.learning_rate) and cfg.learning_rate > 0):
        raise LaomError(f"--lr {cfg.learning_rate}: expected a number > 0")
    if not cfg.net or any(width < 1 for width in cfg.net):
        raise LaomError(f"--net {' '.join(map(str, cfg.net))}: expected hidden sizes >= 1")
    if not (0 < cfg.gamma <= 1 and 0 < cfg.tau <= 1):
        raise LaomError(f"gamma {cfg.gamma}, tau {cfg.tau}: expected numbers > 0 and <= 1")


def _build_model(cfg: TrainConfig, env: Any) -> Any:
    import stable_baselines3 as sb3

    buffer = cfg.buffer_size or min(cfg.steps, 1_000_000)
    common = {
        "learning_rate": cfg.learning_rate,
        "buffer_size": buffer,
        "learning_starts": cfg.learning_starts,
        "batch_size": cfg.batch_size,
        "tau": cfg.tau,
        "gamma": cfg.gamma,
        "train_freq": cfg.train_freq,
        "gradient_steps": cfg.gradient_steps,
        "policy_kwargs": {"net_arch": list(cfg.net)},
        "seed": cfg.seed,
        "device": "cpu",
        "verbose": 0,
    }
    cls = {"sac": sb3.SAC, "td3": sb3.TD3}[cfg.algo]
    return cls("MlpPolicy", env, **common)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let ``kill PID`` stop a background run as cleanly as Ctrl-C does.

    Background jobs of non-interactive shells ignore SIGINT, so SIGTERM is the signal
    that actually reaches a nohup'ed run; both end in the same save-and-exit path.
    """

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _RunLog:
    """Metadata JSON + evaluation CSV of one training folder."""

    def __init__(self, out: Path, cfg: TrainConfig, meta: dict[str, Any] | None) -> None:
        self.out = out
        self.meta = meta or {
            "format": "laom-expert-run",
            "task": cfg.task,
            "algo": cfg.algo,
            "config": asdict(cfg),
            "steps_done": 0,
            "wall_s": 0.0,
            "status": "running",
            "best": None,
            "evals": [],
        }
        self.meta["config"]["steps"] = cfg.steps
        self.meta["steps"] = cfg.steps

    @property
    def best_mean(self) -> float:
        best = self.meta.get("best")
        return -math.inf if not best else float(best["mean"])

    def add_eval(self, step: int, wall_s: float, returns: Sequence[float]) -> bool:
        """Record one evaluation; True when it is the best so far."""
        row = {
            "step": int(step),
            "wall_s": round(wall_s, 1),
            "mean": float(np.mean(returns)),
            "std": float(np.std(returns)),
            "min": float(np.min(returns)),
            "max": float(np.max(returns)),
        }
        improved = row["mean"] > self.best_mean
        self.meta["evals"].append(row)
        if improved:
            self.meta["best"] = row
        path = self.out / EVALS_CSV
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        return improved

    def write(self, **updates: Any) -> None:
        self.meta.update(updates)
        atomic_write_text(self.out / RUN_META, json.dumps(self.meta, indent=2) + "\n")


def _resume_state(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    meta_path = out / RUN_META
    if cfg.restart or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise LaomError(f"{meta_path}: unreadable; pass --restart to start this run over") from None
    if meta.get("task") != cfg.task or meta.get("algo") != cfg.algo:
        raise LaomError(
            f"{out} holds a {meta.get('algo')} run for {meta.get('task')}, not {cfg.algo} for {cfg.task}; "
            "choose another --out or pass --restart"
        )
    if not (out / MODEL_ZIP).exists():
        return None  # interrupted before the first checkpoint: nothing to resume
    return meta


def train(
    cfg: TrainConfig,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an expert into ``cfg.out``; returns the run metadata (also in expert.json)."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from laom.envs.tasks import StateEnv
    from laom.progress import progress as progress_bar
    from laom.progress import write

    _check_config(cfg)
    torch.set_num_threads(cfg.threads)
    out = check_output(cfg.out, "--out", kind="dir", create_parents=True)
    out.mkdir(parents=True, exist_ok=True)
    resumed = _resume_state(out, cfg)
    if resumed is None:
        for name in (RUN_META, EVALS_CSV, BEST_NPZ, LAST_NPZ, MODEL_ZIP, BUFFER_PKL):
            (out / name).unlink(missing_ok=True)
    run = _RunLog(out, cfg, resumed)

    env = StateEnv(cfg.task, cfg.seed)
    if resumed is not None:
        import stable_baselines3 as sb3

        cls = {"sac": sb3.SAC, "td3": sb3.TD3}[cfg.algo]
        model = cls.load(out / MODEL_ZIP, env=env, device="cpu")
        if (out / BUFFER_PKL).exists():
            model.load_replay_buffer(out / BUFFER_PKL)
        done_steps = int(model.num_timesteps)
    else:
        model = _build_model(cfg, env)
        done_steps = 0
    # SB3 makes an empty /tmp/SB3-<date> folder on every learn() unless it is handed a
    # logger; ours reports through the progress bar, so it gets one that writes nowhere.
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    wall_before = float(run.meta.get("wall_s", 0.0))
    start = time.monotonic()
    # A bar on a terminal; in a log file a plain status line now and then (laom.progress).
    bar = progress_bar(
        cfg.steps, f"{cfg.algo} {cfg.task}", "step", initial=min(done_steps, cfg.steps), enabled=progress,
        mininterval=1.0, smoothing=0.05,
    )  # fmt: skip
    say = log or write
    if resumed is not None:
        say(f"resuming {out} at step {done_steps} of {cfg.steps} (best so far {run.best_mean:.1f})")

    def wall() -> float:
        return wall_before + time.monotonic() - start

    def checkpoint(model: Any, with_buffer: bool = True) -> None:
        # Each file whole or not replaced: a kill mid-save must not break the resume.
        with atomic_path(out / MODEL_ZIP, durable=True) as tmp:
            model.save(tmp)
        if with_buffer and hasattr(model, "save_replay_buffer"):
            with atomic_path(out / BUFFER_PKL, durable=True) as tmp:
                model.save_replay_buffer(tmp)
        run.write(steps_done=int(model.num_timesteps), wall_s=round(wall(), 1))

    def evaluate_now(model: Any) -> None:
        expert = from_sb3_model(model, task=cfg.task, source=str(out))
        returns = evaluate(expert, cfg.task, cfg.eval_episodes, seed=TRAIN_EVAL_SEED)
        step = int(model.num_timesteps)
        improved = run.add_eval(step, wall(), returns)
        extra = {"step": step, "eval_mean": float(np.mean(returns))}
        expert.save(out / LAST_NPZ, **extra)
        if improved:
            expert.save(out / BEST_NPZ, **extra)
        say(
            f"step {step:>8d}  eval return {np.mean(returns):7.1f} ± {np.std(returns):5.1f}"
            f"  best {run.best_mean:7.1f}  ({wall() / 60:.1f} min)"
        )

    class Hooks(BaseCallback):
        def _on_step(self) -> bool:
            step = self.num_timesteps
            bar.update(step - bar.n)
            if step % self.model.train_freq.frequency == 0 and step % 1000 < self.model.train_freq.frequency:
                ep = [e["r"] for e in self.model.ep_info_buffer]
                train_return = f"{np.mean(ep):.0f}" if ep else "-"
                bar.set_postfix(train_return=train_return, best=f"{run.best_mean:.0f}", refresh=False)
            if step % cfg.eval_every == 0:
                evaluate_now(self.model)
                checkpoint(self.model)
            return True

    status = "interrupted"
    try:
        with _sigterm_as_interrupt():
            remaining = cfg.steps - done_steps
            if remaining > 0:
                model.learn(total_timesteps=remaining, callback=Hooks(), reset_num_timesteps=resumed is None)
            if not run.meta["evals"] or run.meta["evals"][-1]["step"] != int(model.num_timesteps):
                evaluate_now(model)
            status = "done"
    finally:
        bar.close()
        # Interrupted or not, keep what was learnt: the next call resumes from here.
        if int(model.num_timesteps) > 0:
            checkpoint(model)
        run.write(status=status)
        if status != "done":
            say(f"saved step {int(model.num_timesteps)} to {out}; run the same command again to resume")
    return run.meta

