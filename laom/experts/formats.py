"""Reading experts from the formats people actually have on disk.

Three sources matter: the paper release's PPO checkpoints (a folder with
``checkpoint.pt`` + ``config.pt``), stable-baselines3 zips (the release's humanoid SAC,
and anything else trained with SB3), and what ``laom expert train`` writes. Each is
reduced to a numpy :class:`~laom.experts.policy.Expert` so downstream code never cares
where an expert came from, and every failure names the path and what was expected,
because a wrong path is the most common mistake and a torch traceback hides it.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from laom.errors import LaomError
from laom.experts.policy import Expert, ppo_obs_std, read_npz, stack_from_linears

# Names of files inside a training folder written by ``laom expert train``.
RUN_META = "expert.json"
BEST_NPZ = "best.npz"
LAST_NPZ = "last.npz"
SB3_ALGOS = ("SAC", "TD3", "DDPG", "PPO", "A2C")
EXPECTED = (
    "a release PPO folder (checkpoint.pt + config.pt), a stable-baselines3 .zip, "
    "a laom expert .npz, or a folder written by `laom expert train`"
)


def load(path: str | Path, task: str | None = None) -> Expert:
    """Load an expert from any supported format; ``task`` fills in what the file lacks.

    A file that records its own task (release config, laom metadata) must agree with
    ``task``: silently acting on the wrong task would produce a useless dataset.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise LaomError(f"{path}: does not exist (expected {EXPECTED})")
    if path.is_dir():
        expert = _load_dir(path, task)
    elif path.suffix == ".npz":
        expert = read_npz(path)
        expert.task = _reconcile(path, expert.task, task)
    elif path.name in ("checkpoint.pt", "config.pt"):
        expert = load_ppo_dir(path.parent, task)
    elif path.suffix == ".zip" or (path.suffix not in (".pt", ".pth") and zipfile.is_zipfile(path)):
        expert = load_sb3_zip(path, task)
    else:
        raise LaomError(f"{path}: unknown expert format (expected {EXPECTED})")
    if expert.task is None:
        expert.task = infer_task(path)
    return expert


def _load_dir(path: Path, task: str | None) -> Expert:
    if (path / "checkpoint.pt").exists() or (path / "config.pt").exists():
        return load_ppo_dir(path, task)
    if (path / RUN_META).exists():
        return load_run_dir(path, task)
    for name in (BEST_NPZ, "expert.npz", LAST_NPZ):
        if (path / name).exists():
            expert = read_npz(path / name)
            expert.task = _reconcile(path / name, expert.task, task)
            return expert
    raise LaomError(f"{path}: folder has no checkpoint.pt + config.pt, {RUN_META} or expert .npz (expected {EXPECTED})")


def _reconcile(path: Path, recorded: str | None, given: str | None) -> str | None:
    if recorded and given and recorded != given:
        raise LaomError(f"{path}: expert was trained for {recorded}, not {given}")
    return recorded or given


def infer_task(path: Path) -> str | None:
    """Task from a "domain-task" prefix of the file (or folder) name, e.g. humanoid-walk-sac.zip.

    The longest matching suite task wins, so "walker-run-sac" is walker-run and not a
    shorter accidental match.
    """
    from laom.envs.tasks import all_tasks

    names = [path.stem, path.name]
    if path.name in ("checkpoint.pt", "config.pt", BEST_NPZ, LAST_NPZ, "expert.npz"):
        names.append(path.parent.name)
    tasks = sorted(all_tasks(), key=len, reverse=True)
    for name in names:
        lowered = name.lower()
        for task in tasks:
            if lowered == task or re.match(re.escape(task) + r"[-_.]", lowered):
                return task
    return None


# --- release PPO --------------------------------------------------------------------


def _torch_load(path: Path, what: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LaomError(f"{path}: could not read it as a torch {what} ({type(exc).__name__})") from None


def load_ppo_dir(path: Path, task: str | None = None) -> Expert:
    """The release's PPO: Tanh MLP ``actor_mean`` behind a clamped running-mean normaliser."""
    ckpt, cfg = path / "checkpoint.pt", path / "config.pt"
    for f in (ckpt, cfg):
        if not f.is_file():
            raise LaomError(f"{path}: missing {f.name} (a release PPO expert is a folder with checkpoint.pt and config.pt)")
    state = _torch_load(ckpt, "state dict")
    config = _torch_load(cfg, "config dict")
    if not isinstance(state, dict) or not isinstance(config, dict):
        raise LaomError(f"{path}: checkpoint.pt and config.pt must both hold dicts (release PPO format)")
    layer_ids = sorted(
        {int(m.group(1)) for k in state if (m := re.fullmatch(r"actor_mean\.(\d+)\.weight", k))}
    )
    needed = [f"actor_mean.{i}.{p}" for i in layer_ids for p in ("weight", "bias")]
    needed += ["obs_rms.mean", "obs_rms.var"]
    missing = [k for k in needed if k not in state]
    if not layer_ids or missing:
        raise LaomError(
            f"{ckpt}: not a release PPO state dict (missing {', '.join(missing) or 'actor_mean.*'})"
        )
    weights, biases = stack_from_linears(
        [(state[f"actor_mean.{i}.weight"], state[f"actor_mean.{i}.bias"]) for i in layer_ids]
    )
    recorded = None
    if config.get("domain") and config.get("task"):
        recorded = f"{config['domain']}-{config['task']}"
    return Expert(
        weights=weights,
        biases=biases,
        hidden_activation="tanh",
        output_activation="none",
        obs_mean=state["obs_rms.mean"].float().numpy(),
        obs_std=ppo_obs_std(state["obs_rms.var"].double().numpy()),
        obs_clip=10.0,
        task=_reconcile(path, recorded, task),
        algo="ppo",
        source=str(path),
        meta={"config": {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))}},
    )


# --- stable-baselines3 ---------------------------------------------------------------


def sb3_algo_name(path: Path) -> str:
    """Which SB3 class saved the zip, read from its JSON ``data`` (no unpickling)."""
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise LaomError(f"{path}: not a stable-baselines3 zip ({type(exc).__name__}: {exc})") from None
    module = str((data.get("policy_class") or {}).get("__module__", ""))
    match = re.search(r"stable_baselines3\.(\w+)\.policies", module)
    if match and match.group(1).upper() in SB3_ALGOS:
        return match.group(1).upper()
    if "stable_baselines3.common.policies" in module:  # PPO and A2C share ActorCriticPolicy
        return "PPO"
    raise LaomError(f"{path}: stable-baselines3 zip of an unsupported algorithm (policy module {module!r}; supported: {', '.join(SB3_ALGOS)})")


def load_sb3_zip(path: Path, task: str | None = None) -> Expert:
    """Load an SB3 zip with SB3 itself (robust across versions), then keep only the actor."""
    import stable_baselines3 as sb3

    algo = sb3_algo_name(path)
    cls = getattr(sb3, algo)
    # Schedules are pickled closures that often fail across versions; acting needs none.
    custom = {"learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": lambda _: 0.0}
    try:
        model = cls.load(path, device="cpu", custom_objects=custom)
    except Exception as exc:
        raise LaomError(f"{path}: stable-baselines3 could not load this {algo} zip ({type(exc).__name__}: {exc})") from None
    recorded = None
    meta_file = path.parent / RUN_META
    if meta_file.is_file():  # a zip inside a `laom expert train` folder
        recorded = _read_json(meta_file).get("task")
    return from_sb3_model(model, task=_reconcile(path, recorded, task), source=str(path))


def from_sb3_model(model: Any, task: str | None = None, source: str = "") -> Expert:
    """The deterministic actor of an in-memory SB3 model as a numpy expert."""
    import torch.nn as nn
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import FlattenExtractor

    name = type(model).__name__.upper()
    policy = model.policy
    if not isinstance(model.observation_space, spaces.Box) or len(model.observation_space.shape) != 1:
        raise LaomError(f"{source}: only flat Box observations are supported, got {model.observation_space}")
    if not isinstance(model.action_space, spaces.Box):
        raise LaomError(f"{source}: only continuous (Box) actions are supported, got {model.action_space}")
    if name in ("SAC",):
        actor = policy.actor
        modules = [*actor.latent_pi, actor.mu]
        extractor = actor.features_extractor
        output = "tanh"
    elif name in ("TD3", "DDPG"):
        actor = policy.actor
        modules = list(actor.mu)
        extractor = actor.features_extractor
        output = "none"
    elif name in ("PPO", "A2C"):
        modules = [*policy.mlp_extractor.policy_net, policy.action_net]
        extractor = policy.pi_features_extractor
        output = "tanh" if getattr(policy, "squash_output", False) else "none"
    else:
        raise LaomError(f"{source}: unsupported stable-baselines3 algorithm {name}")
    if not isinstance(extractor, FlattenExtractor):
        raise LaomError(f"{source}: only the default flatten feature extractor is supported, got {type(extractor).__name__}")
    if modules and isinstance(modules[-1], nn.Tanh):
        modules, output = modules[:-1], "tanh"
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    acts = {type(m).__name__ for m in modules if not isinstance(m, nn.Linear)}
    known = {"Tanh": "tanh", "ReLU": "relu"}
    if len(acts) > 1 or not acts <= set(known):
        raise LaomError(f"{source}: actor activations {sorted(acts)} are not supported (one of Tanh, ReLU)")
    hidden = known[acts.pop()] if acts else "relu"
    weights, biases = stack_from_linears(linears)
    space = model.action_space
    return Expert(
        weights=weights,
        biases=biases,
        hidden_activation=hidden,
        output_activation=output,
        action_low=space.low if output == "tanh" else None,
        action_high=space.high if output == "tanh" else None,
        task=task,
        algo=name.lower(),
        source=source,
    )


# --- laom expert train folders --------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LaomError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise LaomError(f"{path}: expected a JSON object")
    return data


def load_run_dir(path: Path, task: str | None = None, which: str = "best") -> Expert:
    """A ``laom expert train`` folder: the best checkpoint by evaluation return."""
    meta = _read_json(path / RUN_META)
    order = [BEST_NPZ, LAST_NPZ] if which == "best" else [LAST_NPZ, BEST_NPZ]
    for name in order:
        if (path / name).is_file():
            expert = read_npz(path / name)
            expert.task = _reconcile(path, expert.task or meta.get("task"), task)
            expert.meta = {**expert.meta, "run": meta}
            return expert
    raise LaomError(f"{path}: training folder has no {BEST_NPZ} or {LAST_NPZ} yet (was training interrupted before the first evaluation?)")


def check_task(expert: Expert, task: str) -> None:
    """Refuse an expert whose input/output sizes do not fit ``task``.

    Cheaper and clearer than the shape error numpy would raise mid-collection.
    """
    from laom.envs.tasks import load_dmc

    env = load_dmc(task)
    obs_dim = int(sum(int(np.prod(s.shape)) for s in env.observation_spec().values()))
    act_dim = int(np.prod(env.action_spec().shape))
    where = expert.source or "expert"
    if expert.obs_dim != obs_dim or expert.act_dim != act_dim:
        raise LaomError(
            f"{where}: expert takes state {expert.obs_dim} and outputs action {expert.act_dim}, "
            f"but {task} has state {obs_dim} and action {act_dim}"
        )
    if expert.task and expert.task != task:
        raise LaomError(f"{where}: expert was trained for {expert.task}, not {task}")
