"""Distracting Control Suite environments: shapes, determinism, distractor bounds."""

from __future__ import annotations

import math

import imageio.v2 as imageio
import numpy as np
import pytest

from laom.cli import main
from laom.envs import distractor_config, make
from laom.envs.distractors import CameraShake, ColorJitter
from laom.envs.render import _cube_lookup
from laom.errors import LaomError

TASKS = ["cheetah-run", "walker-run", "hopper-hop", "humanoid-walk"]


def _rollout(env, actions, seed):
    obs, info = env.reset(seed=seed)
    frames, states = [obs], [info["state"]]
    for a in actions:
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        states.append(info["state"])
    return np.stack(frames), np.stack(states)


@pytest.mark.parametrize("task", TASKS)
def test_shapes_and_dtypes(task):
    env = make(task, img_hw=32, frame_stack=3, seed=1)
    obs, info = env.reset(seed=1)
    assert obs.shape == (32, 32, 9) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert info["state"].dtype == np.float32 and info["state"].ndim == 1
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (32, 32, 9)
    assert isinstance(reward, float) and not terminated and not truncated
    env.close()


def test_state_matches_expert_convention():
    from laom.envs.tasks import StateEnv

    env = make("walker-run", img_hw=16, seed=3)
    _, info = env.reset(seed=3)
    state_env = StateEnv("walker-run")
    # alphabetical: height 1, orientations 14, velocity 9
    assert info["state"].shape == state_env.observation_space.shape == (24,)
    assert info["state"][0] == pytest.approx(env.physics.named.data.xipos["torso", "z"], abs=1e-5)


def test_determinism_same_seed_same_frames():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (30, 6)).astype(np.float32)
    a = make("cheetah-run", img_hw=32, seed=5)
    b = make("cheetah-run", img_hw=32, seed=5)
    fa, sa = _rollout(a, actions, seed=11)
    fb, sb = _rollout(b, actions, seed=11)
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(sa, sb)
    fc, _ = _rollout(a, actions, seed=12)
    assert not np.array_equal(fa, fc)


def test_reset_without_seed_continues_a_reproducible_stream():
    a = make("cheetah-run", img_hw=16, seed=7)
    b = make("cheetah-run", img_hw=16, seed=7)
    for _ in range(2):
        oa, ia = a.reset()
        ob, ib = b.reset()
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ia["state"], ib["state"])


def test_distractors_change_pixels_not_states():
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (20, 6)).astype(np.float32)
    vanilla = make("cheetah-run", difficulty="vanilla", img_hw=32, seed=2)
    fv, sv = _rollout(vanilla, actions, seed=4)
    for kwargs in (
        {"difficulty": "scale_easy_video_hard"},
        {"difficulty": "vanilla", "camera_scale": 0.2},
        {"difficulty": "vanilla", "color_scale": 0.2},
        {"difficulty": "vanilla", "background": True},
    ):
        env = make("cheetah-run", img_hw=32, seed=2, **kwargs)
        fd, sd = _rollout(env, actions, seed=4)
        np.testing.assert_array_equal(sd, sv)
        diff = np.abs(fd.astype(int) - fv.astype(int)).mean()
        assert diff > 2.0, (kwargs, diff)


def test_camera_and_colour_stay_in_bounds_for_1000_steps():
    env = make("cheetah-run", difficulty="hard", img_hw=16, seed=0)
    env.reset(seed=0)
    cam, col = env._camera, env._color
    base = np.array(env.physics.model.mat_rgba[:, :3]) if not col.active else col.base
    scale = 0.3
    seen = []
    for _ in range(1000):
        env.step(env.action_space.sample())
        seen.append(cam.state.copy())
        assert np.all(cam.state >= cam.low - 1e-12) and np.all(cam.state <= cam.high + 1e-12)
        assert np.all(np.abs(cam.vel[:3]) <= 0.4 * scale + 1e-12)
        assert abs(cam.vel[3]) <= math.pi / 50 * scale + 1e-12
        assert np.all(col.rgb >= np.clip(base - scale, 0, 1) - 1e-12)
        assert np.all(col.rgb <= np.clip(base + scale, 0, 1) + 1e-12)
        np.testing.assert_allclose(env.physics.model.mat_rgba[:, :3], col.rgb, atol=1e-6)
    assert np.ptp(np.array(seen), axis=0).min() > 0  # every coordinate moved
    assert cam.low[0] == pytest.approx(-math.pi / 2 * scale)
    assert cam.high[2] == pytest.approx(1 + 1.5 * scale) and cam.low[2] == pytest.approx(1 - 0.5 * scale)


def test_dynamic_camera_moves_and_static_does_not():
    dyn = CameraShake(0.1, dynamic=True)
    sta = CameraShake(0.1, dynamic=False)
    rng = np.random.default_rng(0)
    dyn.reset(rng)
    sta.reset(rng)
    d0, s0 = dyn.state.copy(), sta.state.copy()
    for _ in range(50):
        dyn.step(rng)
        sta.step(rng)
    assert not np.allclose(dyn.state, d0)
    np.testing.assert_array_equal(sta.state, s0)


def test_camera_orbit_keeps_looking_at_centre_and_zoom_in_bounds():
    shake = CameraShake(0.3, dynamic=True)
    pos = np.array([0.0, -3.0, 0.5])
    mat = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # columns x, y, z: looks along +y
    focus = np.array([0.0, 0.0, 0.5])
    # zero offsets reproduce the camera exactly
    p, m = shake.apply(pos, mat, focus)
    np.testing.assert_allclose(p, pos)
    np.testing.assert_allclose(m, mat)
    rng = np.random.default_rng(3)
    shake.reset(rng)
    for _ in range(200):
        shake.step(rng)
        p, m = shake.apply(pos, mat, focus)
        to_centre = focus - p
        dist = np.linalg.norm(to_centre)
        np.testing.assert_allclose(-m[:, 2], to_centre / dist, atol=1e-9)  # still aimed
        assert 3 * (1 - 0.5 * 0.3) - 1e-9 <= dist <= 3 * (1 + 1.5 * 0.3) + 1e-9
        assert p[2] >= focus[2] - 1e-9  # upper quadrant
        np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-9)


def test_colour_jitter_static_keeps_colours():
    base = np.full((4, 3), 0.5)
    jit = ColorJitter(base, 0.2, dynamic=False)
    rng = np.random.default_rng(0)
    jit.reset(rng)
    first = jit.rgb.copy()
    assert not np.allclose(first, base)
    jit.step(rng)
    np.testing.assert_array_equal(jit.rgb, first)


def test_frame_stack_pads_with_first_frame():
    env = make("cheetah-run", img_hw=16, frame_stack=3, seed=0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[..., 0:3], obs[..., 3:6])
    np.testing.assert_array_equal(obs[..., 3:6], obs[..., 6:9])
    first = obs[..., 6:9].copy()
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[..., 0:3], first)
    np.testing.assert_array_equal(obs[..., 3:6], first)
    assert not np.array_equal(obs[..., 6:9], first)
    obs2, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs2[..., 3:6], obs[..., 6:9])


def test_eval_split_videos_are_disjoint_from_train():
    train = make("cheetah-run", split="train", img_hw=16)._video.bank
    evals = make("cheetah-run", split="eval", img_hw=16)._video.bank
    assert set(train.names).isdisjoint(evals.names)
    a, b = train.frames(0), evals.frames(0)
    assert not np.array_equal(a[: min(len(a), len(b))], b[: min(len(a), len(b))])


def test_num_videos_follows_difficulty():
    assert len(make("cheetah-run", difficulty="easy", img_hw=16)._video.bank) == 4
    assert len(make("cheetah-run", difficulty="medium", img_hw=16)._video.bank) == 8
    assert make("cheetah-run", difficulty="vanilla", img_hw=16)._video is None


def test_cube_lookup_centre_of_side_face():
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[4, 4] = 200
    frame[4, 7] = 100  # right edge
    out = _cube_lookup(frame, np.array([[0.0, 1.0, 0.0], [0.99, 1.0, 0.0]]))
    assert out[0].tolist() == [200, 200, 200]
    assert out[1].tolist() == [100, 100, 100]  # +x is to the right when looking along +y


def test_translucent_floor_shows_video():
    kw = {"difficulty": "vanilla", "background": True, "img_hw": 32, "seed": 0}
    opaque = make("walker-run", ground_alpha=1.0, **kw)
    clear = make("walker-run", ground_alpha=0.0, **kw)
    o1, _ = opaque.reset(seed=0)
    o2, _ = clear.reset(seed=0)
    assert np.abs(o1.astype(int) - o2.astype(int)).mean() > 1.0


def _write_davis(root, names):
    from PIL import Image

    for i, name in enumerate(names):
        d = root / "JPEGImages" / "480p" / name
        d.mkdir(parents=True)
        for t in range(3):
            img = np.full((24, 40, 3), (40 * i + 10 * t) % 255, np.uint8)
            img[:, : 5 + t] = 255
            Image.fromarray(img).save(d / f"{t:05d}.jpg")


def test_davis_folder_backgrounds(tmp_path):
    _write_davis(tmp_path, ["bear", "boat", "blackswan"])
    env = make("cheetah-run", backgrounds=tmp_path, split="train", img_hw=16)
    assert sorted(env._video.bank.names) == ["bear", "boat"]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16, 16, 9)
    env_eval = make("cheetah-run", backgrounds=tmp_path, split="eval", img_hw=16)
    assert env_eval._video.bank.names == ["blackswan"]


def test_video_folder_backgrounds(tmp_path):
    from laom.envs.backgrounds import stable_split

    names = [f"clip{i}.gif" for i in range(8)]
    for i, name in enumerate(names):
        frames = np.zeros((4, 20, 20, 3), np.uint8)
        frames[:, :, :, i % 3] = np.arange(4)[:, None, None] * 60
        imageio.mimsave(tmp_path / name, list(frames))
    want_train = sorted(n for n in names if stable_split(n) == "train")
    env = make("cheetah-run", backgrounds=tmp_path, split="train", img_hw=16)
    assert sorted(env._video.bank.names) == want_train
    env.reset(seed=0)
    env.step(env.action_space.sample())


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"task": "cheetah-walk"}, "cheetah-walk"),
        ({"task": "nope"}, "nope"),
        ({"difficulty": "impossible"}, "impossible"),
        ({"img_hw": 8}, "img_hw"),
        ({"split": "test"}, "split"),
        ({"backgrounds": "/definitely/missing"}, "/definitely/missing"),
        ({"render": "pretty"}, "pretty"),
        ({"camera_scale": 2.0}, "camera_scale"),
    ],
)
def test_bad_input_raises_clear_error(kwargs, fragment):
    args = {"task": "cheetah-run", "img_hw": 16}
    args.update(kwargs)
    with pytest.raises(LaomError, match=fragment.replace("/", ".")):
        make(**args)


def test_empty_and_unreadable_background_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LaomError, match="empty"):
        make("cheetah-run", backgrounds=empty, img_hw=16)
    bad = tmp_path / "bad"
    (bad / "JPEGImages" / "480p" / "bear").mkdir(parents=True)
    (bad / "JPEGImages" / "480p" / "bear" / "00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LaomError, match="00000.jpg"):
        env = make("cheetah-run", backgrounds=bad, img_hw=16)
        env.reset(seed=0)


def test_distractor_config_overrides():
    cfg = distractor_config("vanilla", camera_scale=0.2)
    assert cfg.camera.scale == 0.2 and cfg.color.scale == 0 and not cfg.background.enabled
    cfg = distractor_config("hard", background=False, dynamic=False)
    assert cfg.camera.scale == 0.3 and not cfg.background.enabled and not cfg.camera.dynamic


@pytest.mark.integration
def test_cli_preview_and_bench(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["env", "preview", "cheetah-run", "--out", str(out), "--steps", "20", "--frames", "4"]) == 0
    img = imageio.imread(out)
    assert img.ndim == 3 and img.shape[2] == 3
    assert main(["env", "bench", "hopper-hop", "--steps", "50", "--img-hw", "32"]) == 0
    assert "steps/s" in capsys.readouterr().out
    assert main(["env", "preview", "cheetah-run", "--difficulty", "bogus", "--out", str(out)]) == 2


def test_random_policy_returns_are_a_function_of_the_seed() -> None:
    """The D4RL-style floor: the same episodes for the same seed, episode i the same
    however many are asked for, and another seed gives other episodes."""
    from laom.envs.tasks import random_policy_returns

    three = random_policy_returns("cheetah-run", 3, seed=0)
    assert random_policy_returns("cheetah-run", 2, seed=0) == three[:2]
    assert random_policy_returns("cheetah-run", 3, seed=1) != three
    assert all(0.0 <= r < 100.0 for r in three)  # cheetah-run's reward is in [0, 1] per step; random barely runs
    with pytest.raises(LaomError, match="episodes 0: expected at least 1"):
        random_policy_returns("cheetah-run", 0)
