"""Experts: every checkpoint format acts exactly like its source framework, errors are
one readable line, training writes a loadable run, and shipped experts fit their tasks."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from laom.cli import main
from laom.errors import LaomError
from laom.experts import Expert, available_builtin, builtin, check_task, infer_task, load

REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    env = os.environ.get("LAOM_REFERENCE_EXPERTS")
    return Path(env) if env else REPO / ".." / "shared" / "reference-experts"


# --- fixtures: tiny checkpoints in each format ----------------------------------------


def _torch_actor(obs_dim: int, act_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, act_dim)
    )


@pytest.fixture(scope="module")
def ppo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Sequential, dict]:
    """A fake release PPO folder for cheetah-run (state 17, action 6)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ppo") / "cheetah-run"
    path.mkdir()
    actor, critic = _torch_actor(17, 6, 32), _torch_actor(17, 1, 32)
    state = {f"actor_mean.{k}": v for k, v in actor.state_dict().items()}
    state.update({f"critic.{k}": v for k, v in critic.state_dict().items()})
    state["actor_logstd"] = torch.zeros(1, 6)
    state["obs_rms.mean"] = torch.randn(17)
    state["obs_rms.var"] = torch.rand(17) * 4 + 0.01
    state["obs_rms.count"] = torch.tensor(1000.0)
    torch.save(state, path / "checkpoint.pt")
    torch.save({"domain": "cheetah", "task": "run", "hidden_dim": 32, "seed": 1}, path / "config.pt")
    return path, actor, state


def _release_ppo_act(actor: nn.Sequential, state: dict, obs: np.ndarray) -> np.ndarray:
    """The release's acting rule, written independently of laom's numpy code."""
    x = torch.as_tensor(obs, dtype=torch.float32)
    x = torch.clamp((x - state["obs_rms.mean"]) / torch.sqrt(state["obs_rms.var"] + 1e-8), -10, 10)
    with torch.no_grad():
        return actor(x).numpy()


@pytest.fixture(scope="module")
def sb3_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    """Tiny SB3 SAC, TD3 and PPO models on cheetah-run, saved under task-prefixed names."""
    from stable_baselines3 import PPO, SAC, TD3

    from laom.envs.tasks import StateEnv

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sb3")

    def small() -> dict:  # SB3 edits policy_kwargs in place, so each model gets its own
        return {"policy_kwargs": {"net_arch": [32, 32]}, "device": "cpu", "seed": 0}

    models = {
        "sac": SAC("MlpPolicy", StateEnv("cheetah-run"), learning_starts=50, batch_size=32, **small()),
        "td3": TD3("MlpPolicy", StateEnv("cheetah-run"), learning_starts=50, batch_size=32, **small()),
        "ppo": PPO("MlpPolicy", StateEnv("cheetah-run"), n_steps=64, batch_size=32, n_epochs=1, **small()),
    }
    out = {}
    for name, model in models.items():
        model.learn(total_timesteps=100)
        path = root / f"cheetah-run-{name}.zip"
        model.save(path)
        out[name] = (path, model)
    return out


def _states(dim: int, n: int = 32, scale: float = 3.0) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal((n, dim)) * scale).astype(np.float32)


# --- release PPO ------------------------------------------------------------------------


def test_ppo_numpy_matches_torch(ppo_dir) -> None:
    path, actor, state = ppo_dir
    expert = load(path)
    assert (expert.task, expert.obs_dim, expert.act_dim, expert.algo) == ("cheetah-run", 17, 6, "ppo")
    obs = _states(17)
    np.testing.assert_allclose(expert.act(obs), _release_ppo_act(actor, state, obs), atol=1e-5)
    single = expert.act(obs[0])
    assert single.shape == (6,) and single.dtype == np.float32
    np.testing.assert_allclose(single, expert.act(obs)[0], atol=1e-6)


def test_ppo_normalisation_is_clamped(ppo_dir) -> None:
    """States far outside the running statistics act as if they sat at ±10 std."""
    path, actor, state = ppo_dir
    expert = load(path)
    std = torch.sqrt(state["obs_rms.var"] + 1e-8).numpy()
    mean = state["obs_rms.mean"].numpy()
    huge = (mean + 1e6 * std)[None].astype(np.float32)
    at_clip = (mean + 10 * std)[None].astype(np.float32)
    np.testing.assert_allclose(expert.act(huge), expert.act(at_clip), atol=1e-5)
    np.testing.assert_allclose(expert.act(huge), _release_ppo_act(actor, state, huge), atol=1e-5)


def test_ppo_loads_from_checkpoint_file_path(ppo_dir) -> None:
    path, _, _ = ppo_dir
    assert load(path / "checkpoint.pt").task == "cheetah-run"


# --- stable-baselines3 --------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["sac", "td3", "ppo"])
def test_sb3_numpy_matches_predict(sb3_models, algo: str) -> None:
    path, model = sb3_models[algo]
    expert = load(path)
    assert (expert.task, expert.obs_dim, expert.act_dim, expert.algo) == ("cheetah-run", 17, 6, algo)
    obs = _states(17)
    want, _ = model.predict(obs, deterministic=True)
    got = expert.act(obs)
    if algo == "ppo":  # SB3 clips a Gaussian policy's output; the expert returns it raw
        got = np.clip(got, -1, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_sac_action_is_tanh_of_mu(sb3_models) -> None:
    path, model = sb3_models["sac"]
    obs = torch.as_tensor(_states(17))
    with torch.no_grad():
        mu = model.policy.actor.mu(model.policy.actor.latent_pi(obs))
    np.testing.assert_allclose(load(path).act(obs.numpy()), torch.tanh(mu).numpy(), atol=1e-5)


def test_npz_round_trip(sb3_models, tmp_path: Path) -> None:
    path, _ = sb3_models["sac"]
    expert = load(path)
    out = expert.save(tmp_path / "exported.npz", note="hello")
    again = load(out)
    assert again.task == "cheetah-run" and again.meta["note"] == "hello"
    obs = _states(17)
    np.testing.assert_array_equal(again.act(obs), expert.act(obs))
    assert out.stat().st_size < 50_000


# --- task inference and checks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("humanoid-walk-sac.zip", "humanoid-walk"),
        ("walker-run_best.npz", "walker-run"),
        ("cheetah-run.zip", "cheetah-run"),
        ("hopper-hop-seed3.zip", "hopper-hop"),
        ("cheetah-runner.zip", None),
        ("policy.zip", None),
    ],
)
def test_infer_task(name: str, task: str | None) -> None:
    assert infer_task(Path(name)) == task


def test_task_argument_fills_in_but_never_contradicts(sb3_models, ppo_dir, tmp_path: Path) -> None:
    path, _ = sb3_models["sac"]
    anonymous = tmp_path / "policy.zip"
    anonymous.write_bytes(path.read_bytes())
    assert load(anonymous).task is None
    assert load(anonymous, task="cheetah-run").task == "cheetah-run"
    with pytest.raises(LaomError, match="trained for cheetah-run, not walker-run"):
        load(ppo_dir[0], task="walker-run")


def test_check_task_names_both_sizes(ppo_dir) -> None:
    expert = load(ppo_dir[0])
    check_task(expert, "cheetah-run")
    with pytest.raises(LaomError) as info:
        check_task(expert, "walker-run")
    msg = str(info.value)
    assert "17" in msg and "24" in msg and str(ppo_dir[0]) in msg and "\n" not in msg


def test_act_rejects_wrong_state_size(ppo_dir) -> None:
    with pytest.raises(LaomError, match="size 17"):
        load(ppo_dir[0]).act(np.zeros(5, np.float32))


# --- bad input ----------------------------------------------------------------------------


def _one_line_error(path: Path, match: str) -> None:
    with pytest.raises(LaomError, match=match) as info:
        load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_bad_paths(tmp_path: Path, ppo_dir) -> None:
    _one_line_error(tmp_path / "nope", "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(empty, "checkpoint.pt")
    half = tmp_path / "half"
    half.mkdir()
    (half / "checkpoint.pt").write_bytes((ppo_dir[0] / "checkpoint.pt").read_bytes())
    _one_line_error(half, "missing config.pt")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "checkpoint.pt").write_bytes(b"not a torch file")
    (broken / "config.pt").write_bytes((ppo_dir[0] / "config.pt").read_bytes())
    _one_line_error(broken, "torch state dict")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    torch.save({"foo": torch.zeros(1)}, wrong / "checkpoint.pt")
    torch.save({"domain": "cheetah", "task": "run"}, wrong / "config.pt")
    _one_line_error(wrong, "not a release PPO state dict")


def test_corrupt_and_unknown_files(tmp_path: Path) -> None:
    garbage = tmp_path / "cheetah-run-sac.zip"
    garbage.write_bytes(b"\x00" * 100)
    _one_line_error(garbage, "not a stable-baselines3 zip")
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("hello.txt", "hi")
    _one_line_error(other_zip, "not a stable-baselines3 zip")
    bad_npz = tmp_path / "x.npz"
    bad_npz.write_bytes(b"junk")
    _one_line_error(bad_npz, "npz")
    foreign_npz = tmp_path / "y.npz"
    np.savez(foreign_npz, a=np.zeros(3))
    _one_line_error(foreign_npz, "not a laom expert")
    text = tmp_path / "policy.txt"
    text.write_text("hello")
    _one_line_error(text, "unknown expert format")


def test_expert_rejects_inconsistent_layers() -> None:
    with pytest.raises(LaomError, match="does not follow"):
        Expert(weights=[np.zeros((3, 4)), np.zeros((5, 2))], biases=[np.zeros(4), np.zeros(2)])


# --- training CLI -------------------------------------------------------------------------

TINY = ["--eval-episodes", "1", "--learning-starts", "100", "--net", "16", "16", "--batch-size", "16", "--no-progress"]


@pytest.mark.integration
def test_train_eval_export_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SB3's default logger makes an empty SB3-<date> folder in the temp dir per learn().
    import tempfile

    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "run"
    args = ["expert", "train", "cheetah-run", "--steps", "300", "--out", str(out), "--eval-every", "200"]
    assert main([*args, *TINY]) == 0
    meta = json.loads((out / "expert.json").read_text())
    assert meta["task"] == "cheetah-run" and meta["algo"] == "sac" and meta["steps_done"] == 300
    assert [e["step"] for e in meta["evals"]] == [200, 300] and meta["status"] == "done"
    assert (out / "evals.csv").read_text().count("\n") == 3
    expert = load(out)
    assert (expert.task, expert.obs_dim, expert.act_dim) == ("cheetah-run", 17, 6)
    assert (out / "best.npz").stat().st_size < 20_000

    # Same command with more steps continues the run instead of starting over.
    args[4] = "400"
    assert main([*args, *TINY]) == 0
    meta = json.loads((out / "expert.json").read_text())
    assert meta["steps_done"] == 400 and [e["step"] for e in meta["evals"]] == [200, 300, 400]
    assert "resuming" in "".join(capsys.readouterr())
    assert not list(scratch.glob("SB3-*")), "training left SB3 logger folders in the temp dir"

    capsys.readouterr()
    assert main(["expert", "eval", str(out), "--episodes", "1", "--seed", "3"]) == 0
    assert "mean return" in capsys.readouterr().out
    assert main(["expert", "export", str(out), str(tmp_path / "small.npz")]) == 0
    assert load(tmp_path / "small.npz").task == "cheetah-run"


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["expert", "eval", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("laom: error:") and "does not exist" in err and "\n" not in err
    assert main(["expert", "train", "cheetah-jump", "--steps", "10", "--out", str(tmp_path / "r")]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["expert", "eval", "builtin:nope-task"]) == 2
    assert "no built-in expert" in capsys.readouterr().err


def test_train_refuses_other_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "expert.json").write_text(json.dumps({"task": "walker-run", "algo": "sac"}))
    from laom.experts.train import TrainConfig, train

    with pytest.raises(LaomError, match="walker-run"):
        train(TrainConfig(task="cheetah-run", steps=10, out=str(out)), progress=False)


# --- shipped experts ----------------------------------------------------------------------


def test_builtin_experts_fit_their_tasks() -> None:
    tasks = available_builtin()
    assert {"cheetah-run", "walker-run"} <= set(tasks)
    for task in tasks:
        expert = builtin(task)
        assert expert is not None and expert.task == task
        check_task(expert, task)
        npz = REPO / "laom" / "assets" / "experts" / task / "expert.npz"
        assert npz.stat().st_size < 400_000
        assert expert.meta["info"]["eval"]["mean"] > 0
        action = expert.act(np.zeros(expert.obs_dim, np.float32))
        assert action.shape == (expert.act_dim,) and np.all(np.abs(action) <= 1)
    assert builtin("acrobot-swingup") is None


# --- the paper's experts --------------------------------------------------------------------

REFERENCE = [
    ("cheetah-run", "cheetah-run", 780.0),
    ("walker-run", "walker-run", 700.0),
    ("hopper-hop", "hopper-hop", 280.0),
    ("humanoid-walk-sac.zip", "humanoid-walk", 580.0),
]


@pytest.mark.integration
@pytest.mark.reference
@pytest.mark.parametrize(("name", "task", "minimum"), REFERENCE, ids=[r[1] for r in REFERENCE])
def test_reference_experts_reach_paper_returns(name: str, task: str, minimum: float) -> None:
    from laom.experts.train import evaluate

    path = reference_dir() / name
    if not path.exists():
        pytest.skip(f"reference experts not found at {path} (set LAOM_REFERENCE_EXPERTS)")
    expert = load(path)
    assert expert.task == task
    check_task(expert, task)
    returns = evaluate(expert, task, episodes=10, seed=0)
    print(f"{task}: mean {np.mean(returns):.1f} ± {np.std(returns):.1f} over seeds 0-9")
    assert np.mean(returns) >= minimum


def test_resolve_builtin_specs(ppo_dir) -> None:
    from laom.experts import resolve

    assert resolve("builtin:cheetah-run").task == "cheetah-run"
    assert resolve("builtin", task="walker-run").task == "walker-run"
    assert resolve(ppo_dir[0]).algo == "ppo"
    with pytest.raises(LaomError, match="needs a task"):
        resolve("builtin")
    with pytest.raises(LaomError, match="not walker-run"):
        resolve("builtin:cheetah-run", task="walker-run")


def test_evaluate_episode_i_resets_with_seed_plus_i() -> None:
    """The expert's returns and the random floor share one rollout loop; its seeding
    makes episode ``i`` of a run from ``seed`` the same as episode 0 of a run from
    ``seed + i``, so evaluations over different episode counts line up."""
    from laom.envs.tasks import StateEnv, state_returns
    from laom.experts.train import evaluate

    expert = builtin("cheetah-run")
    both = evaluate(expert, "cheetah-run", episodes=2, seed=3)
    assert both[1] == evaluate(expert, "cheetah-run", episodes=1, seed=4)[0]
    assert both[0] != both[1]
    env = StateEnv("cheetah-run", 0)
    zeros = state_returns(env, 2, 7, lambda _i: lambda s: np.zeros(env.action_space.shape, np.float32))
    assert zeros[0] != zeros[1] and all(np.isfinite(zeros))
