"""Collecting datasets: an expert acts on the proprioceptive state, the env renders pixels.

Design points, each forced by a requirement:

* Worker processes are started with **spawn**: forking a process that has an EGL
  context deadlocks, and spawn also keeps the main process free of rendering state.
* Episode ``i`` resets its environment with a seed derived only from ``(seed, i)``
  (:func:`episode_seed`), so a dataset is the same whichever worker ran which episode,
  however many workers there were, and whether it was collected in one go or resumed.
* Only the main process writes, one whole episode per journaled transaction
  (:class:`laom.data.format.Writer`); Ctrl-C or a kill loses at most the episodes in
  flight, and running the same command again finishes the file.
* Group names are global episode indices. A shard (``--shard I/N``) owns episodes
  ``I, I+N, I+2N, ...`` of ``--episodes``, so shard files have gaps in their numbering
  until ``laom data merge`` joins them and renumbers ``0..N-1`` in episode order.
* The distractors' state behind every frame (camera, colour, background video and frame)
  is stored in each group's ``distractors`` subgroup when the env can say it
  (``distractor_state()``); it is a function of the episode's seed like everything else.
* Workers compute with **portable numerics** (:func:`portable_numerics_env`): the expert's
  float32 matmuls and tanh round differently under AVX-512 kernels than under AVX2 ones,
  and a chaotic task (cheetah) turns a last-bit difference into another trajectory within
  an episode, so a seeded dataset collected on an AVX-512 machine differed from the same
  collection on an AVX2 one. Pinned to the AVX2 code paths, both give the same file.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import platform
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laom import __version__
from laom.data.format import (
    Compression,
    DatasetReader,
    Writer,
    check_output_path,
    create,
    plain,
    shard_indices,
)
from laom.errors import LaomError
from laom.outputs import nearest_existing

# Attributes that identify what a collection file contains; resuming with different
# values would silently mix two datasets in one file.
IDENTITY = (
    "task", "difficulty", "split", "img_hw", "seed", "shard", "max_steps", "action_noise", "noise_labels"
)  # fmt: skip
NOISE_LABELS = ("executed", "expert")


@dataclass
class CollectConfig:
    """Everything that determines a collection; the CLI flags map onto these fields."""

    task: str
    episodes: int
    out: Path
    difficulty: str = "scale_easy_video_hard"
    split: str = "train"
    img_hw: int = 64
    workers: int = 1  # 0: collect in this process (debugging, tests; its numerics are not pinned)
    seed: int = 0
    shard: tuple[int, int] = (0, 1)
    compression: str = "none"
    backgrounds: str | None = None
    expert: str | None = None  # None: the built-in expert of the task
    max_steps: int | None = None  # cut episodes short (tests, debugging)
    # Std of Gaussian noise added to the expert's action before it is executed (and
    # stored). 0 (default): the greedy expert. The release's PPO experts sample their
    # actions, so their datasets visit states off the greedy path; this is the knob that
    # gives a deterministic expert the same kind of coverage (DART, Laskey et al. 2017).
    action_noise: float = 0.0
    # Which action a noisy step stores. "executed" (default): the noisy one, as the
    # release's sampled PPO actions. "expert": the expert's clean action in the state
    # the noise led to, DART's labels: a BC policy then learns to steer back from the
    # perturbed states instead of imitating the noise (the built-in SAC experts' noisy
    # data costs BC more in label quality than it gains in coverage, docs/acting_policies.md).
    noise_labels: str = "executed"
    render: str = "fast"
    progress: bool = True
    # Where workers get their env and expert from ("module:function"); tests swap them.
    env_factory: str = "laom.envs:make"
    expert_factory: str = "laom.data.collect:load_expert"


@dataclass
class CollectResult:
    """What a run did (the file may also hold episodes from earlier runs)."""

    path: Path
    written: int  # episodes written by this run
    skipped: int  # episodes that were already in the file
    frames: int  # frames written by this run
    seconds: float  # wall time, including starting workers and building environments
    returns: list[float]
    rollout_seconds: list[float] = field(default_factory=list)  # per episode, in its worker

    @property
    def fps(self) -> float:
        """End-to-end frames/s of this run."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def worker_fps(self) -> float:
        """Frames/s of one worker while rolling out (no start-up), averaged over episodes."""
        busy = sum(self.rollout_seconds)
        return self.frames / busy if busy > 0 else 0.0


def episode_seed(seed: int, index: int) -> int:
    """The reset seed of episode ``index``: a function of (seed, index) and nothing else."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)


def load_expert(path: str | None, task: str) -> Any:
    """The expert at ``path`` (or ``builtin[:TASK]``; None: the task's built-in one), checked.

    The size check runs here, in the main process, before any worker starts: a wrong
    expert should cost one clear line, not a traceback from every worker.
    """
    from laom import experts

    try:
        expert = experts.resolve(path or "builtin", task)
        experts.check_task(expert, task)
    except LaomError as exc:  # the commands take the path as --expert
        raise LaomError(f"--expert {exc}" if path else str(exc)) from None
    return expert


def _resolve(spec: str) -> Callable[..., Any]:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------- workers
_WORKER: dict[str, Any] = {}


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops them in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("MUJOCO_GL", "egl")


def _worker_setup(spec: dict[str, Any]) -> dict[str, Any]:
    """Build (once per process) the env and expert a worker reuses for all its episodes."""
    if _WORKER.get("spec") != spec:
        env = _resolve(spec["env_factory"])(
            spec["task"],
            difficulty=spec["difficulty"],
            backgrounds=spec["backgrounds"],
            split=spec["split"],
            img_hw=spec["img_hw"],
            frame_stack=1,
            seed=spec["seed"],
            render=spec["render"],
        )
        expert = _resolve(spec["expert_factory"])(spec["expert"], spec["task"])
        _teardown()
        _WORKER.update(spec=spec, env=env, expert=expert)
    return _WORKER


def _teardown() -> None:
    env = _WORKER.get("env")
    if env is not None:
        env.close()
    _WORKER.clear()


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """What the file attributes need to know about the env (asked of a worker)."""
    w = _worker_setup(spec)
    env = w["env"].unwrapped
    obs, info = w["env"].reset(seed=0)
    state = np.asarray(info["state"])
    expert = w["expert"]
    if getattr(expert, "obs_dim", state.shape[-1]) != state.shape[-1]:
        raise LaomError(
            f"expert takes state {expert.obs_dim} but {spec['task']} gives state {state.shape[-1]}"
        )
    return {
        "task": env.task,
        "difficulty": env.difficulty,
        "dynamic": bool(env.dynamic),
        "split": env.split,
        "img_hw": int(env.img_hw),
        "obs_shape": tuple(np.asarray(obs).shape),
    }


def run_episode(spec: dict[str, Any], index: int) -> dict[str, Any]:
    """Roll out episode ``index``: obs_t, state_t, action_t for t < T and the return."""
    w = _worker_setup(spec)
    env, expert = w["env"], w["expert"]
    start = time.perf_counter()
    obs, info = env.reset(seed=episode_seed(spec["seed"], index))
    limit = spec["max_steps"] or 1000
    sigma = float(spec.get("action_noise", 0.0))
    store_expert = spec.get("noise_labels", "executed") == "expert"
    # Its own stream per episode, so the noise too depends on (seed, index) only.
    noise = np.random.default_rng([episode_seed(spec["seed"], index), 1])
    frames = np.empty((limit, *np.asarray(obs).shape), np.uint8)
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    # Envs that cannot say their distractors' state (fakes, other gym envs) record none.
    distractor_state = getattr(getattr(env, "unwrapped", env), "distractor_state", None)
    records: list[dict[str, np.ndarray]] = []
    total = 0.0
    t = 0
    while t < limit:
        state = np.asarray(info["state"], np.float32)
        action = np.asarray(expert.act(state), np.float32)
        label = action
        if sigma > 0:
            # Executed before the env's clipping, like the release's sampled PPO actions;
            # stored too unless the labels are the expert's (noise_labels="expert").
            action = (action + sigma * noise.standard_normal(action.shape)).astype(np.float32)
            if not store_expert:
                label = action
        frames[t] = obs
        states.append(state)
        actions.append(label)
        if distractor_state is not None:
            records.append(distractor_state())
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        t += 1
        if terminated or truncated:
            break
    return {
        "index": index,
        "obs": frames[:t],
        "states": np.stack(states),
        "actions": np.stack(actions),
        "distractors": {k: np.stack([r[k] for r in records]) for k in records[0]} if records else None,
        "traj_return": total,
        "seconds": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------- main process
def _spec(cfg: CollectConfig) -> dict[str, Any]:
    return {
        "task": cfg.task,
        "difficulty": cfg.difficulty,
        "backgrounds": None if cfg.backgrounds is None else str(cfg.backgrounds),
        "split": cfg.split,
        "img_hw": int(cfg.img_hw),
        "seed": int(cfg.seed),
        "render": cfg.render,
        "expert": cfg.expert,
        "max_steps": cfg.max_steps,
        "action_noise": float(cfg.action_noise),
        "noise_labels": str(cfg.noise_labels),
        "env_factory": cfg.env_factory,
        "expert_factory": cfg.expert_factory,
    }


def check_config(cfg: CollectConfig) -> None:
    """Refuse bad flags before any process starts or any file is touched."""
    check_settings(cfg)
    out = Path(cfg.out)
    if out.suffix not in (".hdf5", ".h5"):
        raise LaomError(f"--out {out}: expected a .hdf5 file name")
    check_output_path(out, force=True, flag="--out")  # an existing file is resumed, checked below


def check_settings(cfg: CollectConfig) -> None:
    """Every flag but --out (the demo checks its collections' settings with this before
    it creates its output folder)."""
    if not isinstance(cfg.episodes, int) or cfg.episodes < 1:
        raise LaomError(f"--episodes {cfg.episodes}: need at least 1 episode")
    if cfg.seed < 0:
        raise LaomError(f"--seed {cfg.seed}: expected an integer >= 0")
    if cfg.workers < 0:
        raise LaomError(f"--workers {cfg.workers}: need 1 or more (0 = in this process)")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise LaomError(f"--max-steps {cfg.max_steps}: need at least 1 step")
    if not np.isfinite(cfg.action_noise) or cfg.action_noise < 0:
        raise LaomError(f"--action-noise {cfg.action_noise}: expected a standard deviation >= 0")
    if cfg.noise_labels not in NOISE_LABELS:
        raise LaomError(f"--noise-labels {cfg.noise_labels!r}: expected one of {', '.join(NOISE_LABELS)}")
    i, n = cfg.shard
    if n < 1 or not 0 <= i < n:
        raise LaomError(f"--shard {i}/{n}: need 0 <= I < N")
    if cfg.split not in ("train", "eval"):
        raise LaomError(f"--split {cfg.split!r}: expected train or eval")
    if cfg.env_factory == CollectConfig.env_factory:
        from laom.envs import DIFFICULTIES, MAX_IMG_HW, MIN_IMG_HW, parse_task

        parse_task(cfg.task, flag="--task")
        if not MIN_IMG_HW <= cfg.img_hw <= MAX_IMG_HW:
            raise LaomError(f"--img-hw {cfg.img_hw}: expected {MIN_IMG_HW} to {MAX_IMG_HW} pixels")
        if cfg.difficulty not in DIFFICULTIES:
            raise LaomError(
                f"--difficulty {cfg.difficulty!r}: expected one of {', '.join(DIFFICULTIES)}"
            )
    Compression.parse(cfg.compression)


# What a frame costs on disk beside its pixels: the float32 state and action and the
# distractor records, rounded up (at 64 px the pixels are over 95% of a file).
FRAME_EXTRA_BYTES = 512


def collection_bytes(episodes: int, steps: int, img_hw: int) -> int:
    """Bytes ``episodes`` episodes of ``steps`` frames take with obs stored uncompressed."""
    return int(episodes) * int(steps) * (int(img_hw) ** 2 * 3 + FRAME_EXTRA_BYTES)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_free_space(
    path: Path, need: int, flag: str, *, compressed: bool, what: str = "the collection needs", compress_hint: bool = True
) -> str | None:
    """Refuse a collection that cannot fit before its first frame, rather than fail hours
    in with the disk full (which also starves everything else on that disk).

    Compressed obs take an unknown share of ``need`` until they are written, so then
    only a note comes back (None when the uncompressed size fits)."""
    where = nearest_existing(Path(path).absolute(), flag, Path(path))
    try:
        free = shutil.disk_usage(where).free
    except OSError:  # a filesystem that cannot say: the write itself will tell
        return None
    if need <= free:
        return None
    says = f"{flag} {path}: {what} about {_size(need)}"
    if compressed:
        return f"note: {says} uncompressed and {where} has {_size(free)} free; it fits only if compression saves the rest"
    hint = ", or store obs compressed (--compression lzf)" if compress_hint else ""
    raise LaomError(f"{says} and {where} has {_size(free)} free; free space or choose another {flag}{hint}")


def _identity(cfg: CollectConfig) -> dict[str, Any]:
    return {
        "task": cfg.task,
        "difficulty": cfg.difficulty,
        "split": cfg.split,
        "img_hw": int(cfg.img_hw),
        "seed": int(cfg.seed),
        "shard": f"{cfg.shard[0]}/{cfg.shard[1]}",
        "max_steps": int(cfg.max_steps or 0),
        "action_noise": float(cfg.action_noise),
        "noise_labels": str(cfg.noise_labels),
    }


def _file_identity(attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": f"{attrs.get('domain_name')}-{attrs.get('task_name')}",
        "difficulty": attrs.get("difficulty"),
        "split": attrs.get("split"),
        "img_hw": int(plain(attrs.get("img_hw", 0))),
        "seed": attrs.get("seed"),
        "shard": attrs.get("shard", "0/1"),
        "max_steps": int(attrs.get("max_steps", 0)),
        "action_noise": float(plain(attrs.get("action_noise", 0.0))),
        "noise_labels": str(plain(attrs.get("noise_labels", "executed"))),
    }


def _check_resume(cfg: CollectConfig, attrs: dict[str, Any]) -> None:
    """Refuse to add episodes to a file that holds a different collection."""
    out = Path(cfg.out)
    if "seed" not in attrs or "episodes" not in attrs:
        raise LaomError(
            f"--out {out} exists and is not a `laom collect` file (no seed/episodes "
            "attributes); refusing to touch it, choose another path"
        )
    mine, theirs = _identity(cfg), _file_identity(attrs)
    for key in IDENTITY:
        if mine[key] != theirs[key]:
            flag = {"task": "--task", "max_steps": "--max-steps", "action_noise": "--action-noise",
                    "noise_labels": "--noise-labels"}.get(
                key, "--" + key.replace("_", "-")
            )
            raise LaomError(
                f"--out {out} was collected with {key}={theirs[key]!r}, not {mine[key]!r}; "
                f"resume it with the same {flag} or choose another --out"
            )
    stored = attrs.get("obs_compression", "none")
    if str(Compression.parse(cfg.compression)) != stored:
        raise LaomError(
            f"--out {out} stores obs with compression {stored}; resume it with --compression {stored}"
        )


def _progress(total_frames: int, enabled: bool) -> Any:
    from laom.progress import progress

    return progress(total_frames, "collect", "frame", enabled=enabled, unit_scale=True, smoothing=0.05)


def collect(cfg: CollectConfig, log: Callable[[str], None] = print) -> CollectResult:
    """Collect (or finish collecting) ``cfg.out``; see the module docstring."""
    check_config(cfg)
    out = Path(cfg.out)
    spec = _spec(cfg)
    compression = Compression.parse(cfg.compression)
    mine = list(shard_indices(cfg.episodes, cfg.shard))

    # A wrong expert is found here, in the main process, in a second, not in every worker.
    if cfg.expert_factory == CollectConfig.expert_factory:
        load_expert(cfg.expert, cfg.task)

    existing: set[int] = set()
    resuming = out.exists()
    if resuming:
        # Read-only first: a file that is not ours must not even be opened for writing.
        try:
            with DatasetReader(out) as reader:  # also undoes an episode cut by a crash
                attrs = reader.attrs
                existing = set(reader.indices)
        except LaomError as exc:  # not a collection to resume: say which flag points at it
            raise LaomError(f"--out {exc} (collect resumes an existing --out; pick a new file name)") from None
        _check_resume(cfg, attrs)
        expert = cfg.expert or f"builtin:{cfg.task}"
        if attrs.get("expert", expert) != expert:
            log(
                f"note: {out} was collected with expert {attrs['expert']}; continuing with {expert}"
            )
        stray = sorted(existing - set(mine))
        if stray:
            raise LaomError(
                f"--out {out} already holds episode {stray[-1]}, which --episodes "
                f"{cfg.episodes} leaves out; use --episodes {int(attrs['episodes'])} or more"
            )
    todo = [i for i in mine if i not in existing]
    if not todo:
        log(f"{out}: all {len(mine)} episodes already collected")
        return CollectResult(out, 0, len(existing), 0, 0.0, [])

    frames_per_episode = cfg.max_steps or 1000
    note = check_free_space(
        out, collection_bytes(len(todo), frames_per_episode, cfg.img_hw), "--out", compressed=compression.name != "none"
    )
    if note:
        log(note)
    written, frames = 0, 0
    returns: list[float] = []
    rollout: list[float] = []
    start = time.perf_counter()
    with _Runner(spec, cfg.workers) as runner:
        if not resuming:
            meta = runner.probe()
            domain, task_name = cfg.task.split("-", 1)
            create(
                out,
                {
                    "domain_name": domain,
                    "task_name": task_name,
                    "difficulty": meta["difficulty"],
                    "dynamic": meta["dynamic"],
                    "img_hw": meta["img_hw"],
                    "split": meta["split"],
                    "dataset_return": 0.0,
                    "seed": int(cfg.seed),
                    "episodes": int(cfg.episodes),
                    "shard": f"{cfg.shard[0]}/{cfg.shard[1]}",
                    "max_steps": int(cfg.max_steps or 0),
                    "action_noise": float(cfg.action_noise),
                    "noise_labels": str(cfg.noise_labels),
                    "obs_compression": str(compression),
                    "expert": cfg.expert or f"builtin:{cfg.task}",
                    "backgrounds": str(cfg.backgrounds or "procedural"),
                    "laom_version": __version__,
                },
            )
        writer = Writer(out, compression)
        try:
            if int(writer.attrs["episodes"]) != cfg.episodes:
                writer.set_attrs({"episodes": int(cfg.episodes)})
            shard = f" (shard {cfg.shard[0]}/{cfg.shard[1]})" if cfg.shard[1] > 1 else ""
            log(
                f"{out}: collecting {len(todo)} episode(s){shard} of {cfg.task} with "
                f"{max(cfg.workers, 1)} worker(s)"
                + (f"; {len(existing)} already there" if existing else "")
            )
            with _progress(len(todo) * frames_per_episode, cfg.progress) as bar:
                for ep in runner.run(todo):
                    writer.append(
                        ep["index"],
                        ep["obs"],
                        ep["states"],
                        ep["actions"],
                        ep["traj_return"],
                        {
                            "episode_index": ep["index"],
                            "episode_seed": episode_seed(cfg.seed, ep["index"]),
                        },
                        distractors=ep.get("distractors"),
                    )
                    written += 1
                    frames += len(ep["obs"])
                    returns.append(ep["traj_return"])
                    rollout.append(ep["seconds"])
                    bar.set_postfix(
                        episodes=f"{len(existing) + written}/{len(mine)}",
                        ret=f"{np.mean(returns):.1f}",
                        refresh=False,
                    )
                    bar.update(len(ep["obs"]))
        finally:
            writer.close()
    seconds = time.perf_counter() - start
    return CollectResult(out, written, len(existing), frames, seconds, returns, rollout)


def _worker_died() -> LaomError:
    return LaomError(
        "a collection worker died unexpectedly (crash or out of memory); finished "
        "episodes are kept: run the same command again to resume"
    )


# Dispatch targets of numpy's SIMD code wider than x86-64-v3 (AVX2 + FMA): numpy names
# its AVX-512 targets this way, and x86-64-v3 is what every AVX2 machine runs.
_WIDER_THAN_AVX2 = ("X86_V4", "AVX512")


def portable_numerics_env() -> dict[str, str]:
    """Environment variables under which a spawned worker's numpy and OpenBLAS take the
    same code paths on every x86-64 machine with AVX2, whatever wider units it has.

    Why: a dataset's cache keys are its content (laom.data.identity), and a study that
    outlives its machine collects its data again on whatever machine it gets next. On
    2026-12-02 the same seeded collection gave another file on an AVX-512 Intel machine
    than on the AVX2 AMD one before it; with these two pins it gave the AMD file to the
    last bit. OpenBLAS picks its kernels when it loads and numpy its SIMD targets when it
    is imported, so they only apply to processes started after they are set: the
    collection workers, which are spawned. Empty on other architectures.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another numpy layout: its own dispatch stays as it is
        return env
    wider = [t for t in __cpu_dispatch__ if t.startswith(_WIDER_THAN_AVX2) and __cpu_features__.get(t)]
    already = os.environ.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split()
    disable = already + [t for t in wider if t not in already]
    if disable:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disable)
    return env


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set while the block runs (spawned children inherit
    it), restored afterwards so a caller's later processes are not pinned too."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Runner:
    """Runs episodes in spawned workers (or in this process when ``workers == 0``).

    A ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: when a worker dies
    (a segfault in the renderer, the OOM killer) the executor fails the pending episodes
    with ``BrokenProcessPool``, where a Pool would silently wait forever for them.
    At most two episodes per worker are in flight, so finished episodes never pile up
    in memory while the main process writes.
    """

    def __init__(self, spec: dict[str, Any], workers: int) -> None:
        self.spec = spec
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self._env = contextlib.ExitStack()

    def __enter__(self) -> _Runner:
        if self.workers > 0:
            # The pool spawns its workers on demand (and replaces none), so the pins stay
            # set for the pool's whole life.
            self._env.enter_context(_environ(portable_numerics_env()))
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("spawn"), initializer=_ignore_sigint
            )
        return self

    def probe(self) -> dict[str, Any]:
        if self.pool is None:
            return probe(self.spec)
        return self._result(self.pool.submit(probe, self.spec))

    def run(self, indices: list[int]) -> Iterator[dict[str, Any]]:
        if self.pool is None:
            for i in indices:
                yield run_episode(self.spec, i)
            return
        todo = iter(indices)
        pending: set[Future[dict[str, Any]]] = set()
        try:
            while True:
                for i in todo:
                    pending.add(self.pool.submit(run_episode, self.spec, i))
                    if len(pending) >= 2 * self.workers:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield self._result(fut)
        except BrokenProcessPool:
            raise _worker_died() from None

    @staticmethod
    def _result(fut: Future[dict[str, Any]]) -> dict[str, Any]:
        try:
            return fut.result()
        except BrokenProcessPool:
            raise _worker_died() from None

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.pool is not None:
            if exc_type is not None:
                # Ctrl-C / error: episodes in flight are dropped, workers stop now.
                for proc in list(getattr(self.pool, "_processes", {}).values()):
                    proc.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._env.close()
        _teardown()
