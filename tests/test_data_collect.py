"""`laom collect`: determinism across workers, resume, interruption, kill -9, bad input.

Most tests drive the collection machinery with a tiny fake environment and expert
(importable by spawned workers, since they live in this module); the integration tests
use the real Distracting Control Suite at 16 px with short episodes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from laom.cli import main
from laom.data.collect import CollectConfig, collect, episode_seed
from laom.data.format import DatasetReader, validate
from laom.data.journal import journal_path
from laom.errors import LaomError

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference-experts"
CHEETAH = REFERENCE / "cheetah-run"
WALKER = REFERENCE / "walker-run"
HERE = f"{Path(__file__).stem}"


# ----------------------------------------------------------------------------- fakes
class FakeEnv:
    """Deterministic per reset seed, like the real env; 10-step episodes."""

    def __init__(
        self, task: str, difficulty: str, split: str, img_hw: int, step_sleep: float
    ) -> None:
        self.task, self.difficulty, self.split, self.img_hw = task, difficulty, split, img_hw
        self.dynamic = True
        self.unwrapped = self
        self.step_sleep = step_sleep

    def _obs(self) -> np.ndarray:
        return self.rng.integers(0, 256, (self.img_hw, self.img_hw, 3), dtype=np.uint8)

    def reset(self, seed: int | None = None):
        global RESETS
        RESETS += 1
        if INTERRUPT_AT is not None and RESETS == INTERRUPT_AT:
            raise KeyboardInterrupt
        die_at = os.environ.get("FAKE_DIE_AT_EPISODE")
        if die_at is not None and seed == episode_seed(7, int(die_at)):
            os._exit(3)  # a worker killed by a segfault or the OOM killer
        self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._obs(), {"state": self.rng.standard_normal(3).astype(np.float32)}

    def step(self, action):
        if self.step_sleep:
            time.sleep(self.step_sleep)
        self.t += 1
        reward = float(np.sum(action))
        state = self.rng.standard_normal(3).astype(np.float32)
        return self._obs(), reward, False, self.t >= 10, {"state": state}

    def close(self) -> None:
        pass


RESETS = 0
INTERRUPT_AT: int | None = None


def make_fake_env(
    task,
    difficulty="vanilla",
    backgrounds=None,
    split="train",
    img_hw=16,
    frame_stack=1,
    seed=0,
    render="fast",
):
    assert frame_stack == 1
    return FakeEnv(task, difficulty, split, img_hw, float(os.environ.get("FAKE_STEP_SLEEP", "0")))


class FakeExpert:
    obs_dim, act_dim = 3, 2

    def act(self, state: np.ndarray) -> np.ndarray:
        return state[:2] * 2.0  # raw, unclipped


def load_fake_expert(path, task):
    return FakeExpert()


def fake_config(out: Path, **kw) -> CollectConfig:
    base = dict(
        task="cheetah-run",
        episodes=5,
        out=out,
        difficulty="vanilla",
        img_hw=16,
        workers=0,
        seed=7,
        progress=False,
        env_factory=f"{HERE}:make_fake_env",
        expert_factory=f"{HERE}:load_fake_expert",
    )
    base.update(kw)
    return CollectConfig(**base)


def read_all(path: Path) -> dict[int, tuple]:
    with DatasetReader(path) as r:
        return {
            i: (t.obs, t.states, t.actions, t.traj_return)
            for i, t in zip(r.indices, r, strict=True)
        }


def assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for i in a:
        for x, y in zip(a[i], b[i], strict=True):
            np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------------------- fake-env tests
def test_collect_layout_and_seeds(tmp_path: Path) -> None:
    out = tmp_path / "c.hdf5"
    res = collect(fake_config(out))
    assert res.written == 5 and res.frames == 50
    report = validate(out)
    assert report.trajectories == 5 and report.complete and report.state_dim == 3
    with h5py.File(out) as f:
        assert f.attrs["seed"] == 7 and f.attrs["episodes"] == 5 and f.attrs["shard"] == "0/1"
        assert f.attrs["domain_name"] == "cheetah" and f.attrs["task_name"] == "run"
        g = f["3"]
        assert g.attrs["episode_index"] == 3 and g.attrs["episode_seed"] == episode_seed(7, 3)
        # action_t is the expert's raw output on state_t; the last next-observation is dropped
        np.testing.assert_allclose(g["actions"][()], g["states"][:, :2] * 2.0)
        assert g["obs"].shape == (10, 16, 16, 3)
        assert g.attrs["traj_return"] == pytest.approx(float(g["actions"][()].sum()), rel=1e-5)


def test_action_noise_is_stored_reproducible_and_part_of_the_identity(tmp_path: Path) -> None:
    clean, a, b = tmp_path / "clean.hdf5", tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    collect(fake_config(clean, episodes=3))
    collect(fake_config(a, episodes=3, action_noise=0.5))
    collect(fake_config(b, episodes=3, action_noise=0.5, workers=2))
    assert_same(read_all(a), read_all(b))  # the noise depends on (seed, episode) only
    with h5py.File(a) as f:
        assert f.attrs["action_noise"] == 0.5
        g = f["1"]
        noise = g["actions"][()] - g["states"][:, :2] * 2.0  # stored = executed = expert + noise
        assert 0.3 < noise.std() < 0.7 and abs(noise.mean()) < 0.3
        assert g.attrs["traj_return"] == pytest.approx(float(g["actions"][()].sum()), rel=1e-5)
    with h5py.File(clean) as f:
        assert f.attrs["action_noise"] == 0.0
    before = a.read_bytes()
    with pytest.raises(LaomError, match="action_noise=0.5"):
        collect(fake_config(a, episodes=4))  # resuming without the noise would mix two datasets
    assert a.read_bytes() == before
    with pytest.raises(LaomError, match="--action-noise -1"):
        collect(fake_config(tmp_path / "neg.hdf5", action_noise=-1.0))
    assert not (tmp_path / "neg.hdf5").exists()


def test_noise_labels_expert_stores_the_clean_action_of_the_noisy_path(tmp_path: Path) -> None:
    executed, dart = tmp_path / "executed.hdf5", tmp_path / "dart.hdf5"
    collect(fake_config(executed, episodes=2, action_noise=0.5))
    collect(fake_config(dart, episodes=2, action_noise=0.5, noise_labels="expert"))
    with h5py.File(executed) as f, h5py.File(dart) as g:
        assert g.attrs["noise_labels"] == "expert" and f.attrs["noise_labels"] == "executed"
        e, d = f["1"], g["1"]
        # The same noise drives both paths, so they visit the same states...
        np.testing.assert_allclose(d["states"][()], e["states"][()])
        # ...but only the executed file stores it: DART's labels are the expert's own.
        np.testing.assert_allclose(d["actions"][()], d["states"][:, :2] * 2.0)
        assert 0.3 < (e["actions"][()] - d["actions"][()]).std() < 0.7
        # The return is the executed path's, not the stored labels'.
        assert d.attrs["traj_return"] == pytest.approx(e.attrs["traj_return"], rel=1e-5)
    before = dart.read_bytes()
    with pytest.raises(LaomError, match="noise_labels='expert'.*--noise-labels"):
        collect(fake_config(dart, episodes=3, action_noise=0.5))
    assert dart.read_bytes() == before
    with pytest.raises(LaomError, match="--noise-labels 'dart'"):
        collect(fake_config(tmp_path / "bad.hdf5", noise_labels="dart"))
    assert not (tmp_path / "bad.hdf5").exists()


def test_episode_seed_depends_only_on_seed_and_index() -> None:
    assert episode_seed(0, 1) == episode_seed(0, 1)
    assert len({episode_seed(s, i) for s in range(5) for i in range(50)}) == 250


def test_spawned_workers_match_in_process(tmp_path: Path) -> None:
    a, b = tmp_path / "w0.hdf5", tmp_path / "w2.hdf5"
    collect(fake_config(a, workers=0))
    collect(fake_config(b, workers=2))
    assert_same(read_all(a), read_all(b))


def test_resume_after_partial_run_and_extend(tmp_path: Path) -> None:
    full, part = tmp_path / "full.hdf5", tmp_path / "part.hdf5"
    collect(fake_config(full, episodes=6))
    collect(fake_config(part, episodes=3))
    assert validate(part).trajectories == 3
    res = collect(fake_config(part, episodes=6))  # extends: only the missing episodes run
    assert (res.written, res.skipped) == (3, 3)
    assert_same(read_all(full), read_all(part))
    again = collect(fake_config(part, episodes=6))
    assert again.written == 0


def test_shards_merge_to_the_unsharded_dataset(tmp_path: Path) -> None:
    from laom.data.merge import merge

    full = tmp_path / "full.hdf5"
    collect(fake_config(full, episodes=5))
    shards = [tmp_path / f"s{i}.hdf5" for i in range(2)]
    for i, s in enumerate(shards):
        collect(fake_config(s, episodes=5, shard=(i, 2)))
    with DatasetReader(shards[1]) as r:
        assert r.indices == [1, 3]  # global episode numbers
    merged = tmp_path / "merged.hdf5"
    merge(merged, shards)
    assert_same(read_all(full), read_all(merged))


def test_keyboard_interrupt_leaves_resumable_file(tmp_path: Path) -> None:
    global INTERRUPT_AT, RESETS
    out = tmp_path / "c.hdf5"
    RESETS, INTERRUPT_AT = 0, 4  # reset 1 is the probe; the 3rd episode is interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            collect(fake_config(out))
    finally:
        INTERRUPT_AT = None
    assert not journal_path(out).exists()
    assert validate(out).trajectories == 2
    collect(fake_config(out))
    ref = tmp_path / "ref.hdf5"
    collect(fake_config(ref))
    assert_same(read_all(ref), read_all(out))


def test_dead_worker_is_an_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "c.hdf5"
    monkeypatch.setenv("FAKE_DIE_AT_EPISODE", "3")
    with pytest.raises(LaomError, match="worker died"):
        collect(fake_config(out, episodes=6, workers=2))
    report = validate(out)
    assert 3 not in set(read_all(out)) and report.trajectories < 6
    monkeypatch.delenv("FAKE_DIE_AT_EPISODE")
    collect(fake_config(out, episodes=6, workers=2))
    ref = tmp_path / "ref.hdf5"
    collect(fake_config(ref, episodes=6))
    assert_same(read_all(ref), read_all(out))


def test_resume_refuses_other_collection(tmp_path: Path) -> None:
    out = tmp_path / "c.hdf5"
    collect(fake_config(out, episodes=2))
    before = out.read_bytes()
    for change, word in (
        ({"seed": 8}, "seed"),
        ({"img_hw": 24}, "img_hw"),
        ({"difficulty": "easy"}, "difficulty"),
        ({"split": "eval"}, "split"),
        ({"task": "walker-run"}, "task"),
        ({"shard": (0, 2)}, "shard"),
        ({"compression": "lzf"}, "compression"),
        ({"episodes": 1}, "leaves out"),
    ):
        with pytest.raises(LaomError, match=word):
            collect(fake_config(out, **change))
    assert out.read_bytes() == before


def test_refuses_foreign_output_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.hdf5"
    junk.write_text("precious")
    with pytest.raises(LaomError, match="not an HDF5"):
        collect(fake_config(junk))
    assert junk.read_text() == "precious"
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.attrs.update(
            {
                "domain_name": "cheetah",
                "task_name": "run",
                "difficulty": "vanilla",
                "dynamic": True,
                "img_hw": 16,
                "split": "train",
                "dataset_return": 0.0,
            }
        )
    before = other.read_bytes()
    with pytest.raises(LaomError, match="not a `laom collect` file"):
        collect(fake_config(other))
    assert other.read_bytes() == before


@pytest.mark.parametrize(
    "argv, word",
    [
        (["--episodes", "0"], "--episodes 0"),
        (["--shard", "2/2"], "--shard"),
        (["--shard", "x"], "--shard"),
        (["--out", "/nonexistent-dir/x.hdf5"], "does not exist"),
        (["--compression", "zip"], "compression"),
        (["--split", "test"], "--split"),
        (["--task", "cheetah-fly"], "unknown task"),
        (["--difficulty", "extreme"], "--difficulty"),
        (["--img-hw", "8"], "--img-hw 8"),
    ],
)
def test_cli_bad_input_one_line(
    argv: list[str], word: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "collect",
        "--task",
        "cheetah-run",
        "--episodes",
        "2",
        "--out",
        str(tmp_path / "o.hdf5"),
        *argv,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("laom: error:") and err.count("\n") == 1 and word in err
    assert not (tmp_path / "o.hdf5").exists()


def _free(monkeypatch: pytest.MonkeyPatch, free: int) -> list[Path]:
    """Pretend the disk has ``free`` bytes; returns the paths asked about."""
    import shutil

    asked: list[Path] = []

    def usage(path):
        asked.append(Path(path))
        return shutil._ntuple_diskusage(10**12, 10**12 - free, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return asked


def test_cli_refuses_a_collection_the_disk_cannot_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _free(monkeypatch, 50 * 2**20)
    out = tmp_path / "o.hdf5"  # the check looks at the nearest folder that exists
    argv = ["collect", "--task", "cheetah-run", "--episodes", "10", "--out", str(out), "--workers", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"laom: error: --out {out}: the collection needs about 122.1 MiB")
    assert err.endswith(f"{tmp_path} has 50.0 MiB free; free space or choose another --out, or store obs compressed (--compression lzf)\n")
    assert asked == [tmp_path] and not out.exists()


def test_compressed_collection_on_a_small_disk_is_a_note_and_resume_counts_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "c.hdf5"
    per_episode = 1000 * (16 * 16 * 3 + 512)  # no --max-steps: a DCS episode's 1,000 frames
    _free(monkeypatch, 3 * per_episode)
    lines: list[str] = []
    collect(fake_config(out, compression="lzf"), log=lines.append)
    assert lines[0] == (
        f"note: --out {out}: the collection needs about 6.1 MiB uncompressed and {tmp_path} has 3.7 MiB free; "
        "it fits only if compression saves the rest"
    )
    assert validate(out).trajectories == 5
    # Resuming needs room for the missing episodes only: 3 more fit, uncompressed too.
    plain_out = tmp_path / "p.hdf5"
    collect(fake_config(plain_out, episodes=2))
    collect(fake_config(plain_out, episodes=5))
    assert validate(plain_out).trajectories == 5
    with pytest.raises(LaomError, match="needs about 4.9 MiB"):
        collect(fake_config(plain_out, episodes=9))
    assert validate(plain_out).trajectories == 5


def test_cli_refuses_expert_of_wrong_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from laom.experts import Expert

    expert = Expert(
        weights=[np.zeros((24, 8)), np.zeros((8, 6))], biases=[np.zeros(8), np.zeros(6)]
    )
    path = expert.save(tmp_path / "walker_sized.npz")
    out = tmp_path / "o.hdf5"
    rc = main(
        [
            "collect",
            "--task",
            "cheetah-run",
            "--expert",
            str(path),
            "--episodes",
            "1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "takes state 24" in err and "cheetah-run has state 17" in err
    assert not out.exists()


@pytest.mark.skipif(not WALKER.exists(), reason="needs ../shared/reference-experts")
def test_cli_refuses_expert_of_other_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.hdf5"
    rc = main(
        [
            "collect",
            "--task",
            "cheetah-run",
            "--expert",
            str(WALKER),
            "--episodes",
            "1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "walker-run" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- integration
@pytest.mark.integration
def test_kill_9_during_collection_then_resume(tmp_path: Path) -> None:
    """SIGKILL a collecting process; the file validates and resuming completes it exactly."""
    out = tmp_path / "c.hdf5"
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from %s import fake_config\n"
        "from laom.data.collect import collect\n"
        "from pathlib import Path\n"
        "collect(fake_config(Path(%r), episodes=40, workers=%d))\n"
    )
    for workers in (0, 2):
        out.unlink(missing_ok=True)
        env = {**os.environ, "FAKE_STEP_SLEEP": "0.02"}
        script = code % (str(Path(__file__).parent), HERE, str(out), workers)
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
        deadline = time.time() + 120
        # Kill once a few episodes are in (each adds ~8 KB), at a moment that varies.
        while not (out.exists() and out.stat().st_size > 40_000) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(float(np.random.default_rng(workers).uniform(0, 0.3)))
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and its workers, mid-episode or mid-write
        proc.wait()
        assert out.exists()
        report = validate(out)
        assert 0 < report.trajectories < 40
        collect(fake_config(out, episodes=40))
        ref = tmp_path / "ref.hdf5"
        if not ref.exists():
            collect(fake_config(ref, episodes=40))
        assert_same(read_all(ref), read_all(out))


@pytest.mark.integration
def test_writer_survives_random_sigkills(tmp_path: Path) -> None:
    from laom.data.killtest import stress

    counts = stress(kills=6, directory=tmp_path, verbose=False)
    assert counts["failures"] == 0 and counts["kills"] == 6


@pytest.mark.integration
@pytest.mark.skipif(not CHEETAH.exists(), reason="needs ../shared/reference-experts")
def test_real_env_identical_for_one_and_two_workers(tmp_path: Path) -> None:
    common = [
        "--task",
        "cheetah-run",
        "--expert",
        str(CHEETAH),
        "--episodes",
        "3",
        "--img-hw",
        "16",
        "--max-steps",
        "12",
        "--seed",
        "3",
        "--quiet",
    ]
    a, b = tmp_path / "w1.hdf5", tmp_path / "w2.hdf5"
    assert main(["collect", *common, "--workers", "1", "--out", str(a)]) == 0
    assert main(["collect", *common, "--workers", "2", "--out", str(b)]) == 0
    assert_same(read_all(a), read_all(b))
    report = validate(a)
    assert report.trajectories == 3 and report.state_dim == 17 and report.action_dim == 6
    with h5py.File(a) as f:
        assert f.attrs["difficulty"] == "scale_easy_video_hard" and f.attrs["img_hw"] == 16
        assert f["0"]["obs"].shape == (12, 16, 16, 3)


@pytest.mark.integration
@pytest.mark.skipif(not CHEETAH.exists(), reason="needs ../shared/reference-experts")
def test_real_env_resume_matches_single_run(tmp_path: Path) -> None:
    common = dict(
        task="cheetah-run",
        expert=str(CHEETAH),
        img_hw=16,
        max_steps=8,
        workers=0,
        seed=1,
        progress=False,
    )
    a, b = tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    collect(CollectConfig(out=a, episodes=3, **common))
    collect(CollectConfig(out=b, episodes=2, **common))
    collect(CollectConfig(out=b, episodes=3, **common))
    assert_same(read_all(a), read_all(b))


def test_portable_numerics_pin_the_workers_and_leave_this_process_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pins that made an AVX-512 machine collect the AVX2 machine's file bit for bit:
    a process started under them runs no numpy SIMD target wider than x86-64-v3, and the
    caller's environment is as it was after the pool closes."""
    from laom.data import collect as collect_module

    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES", raising=False)
    env = collect_module.portable_numerics_env()
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert env == {}
        return
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    code = (
        "from numpy._core._multiarray_umath import __cpu_dispatch__ as d, __cpu_features__ as f;"
        "print(' '.join(t for t in d if f.get(t)))"
    )
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                        env={**os.environ, **env}).stdout.split()  # fmt: skip
    assert not [t for t in on if t.startswith(("X86_V4", "AVX512"))], on
    before = os.environ.get("OPENBLAS_CORETYPE")
    with collect_module._Runner({}, workers=1):
        assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"
    assert os.environ.get("OPENBLAS_CORETYPE") == before
    monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", "AVX512F")  # a user's own choice is kept
    assert collect_module.portable_numerics_env()["NPY_DISABLE_CPU_FEATURES"].split()[0] == "AVX512F"
