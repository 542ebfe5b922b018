"""Data-parallel training: 2 CPU processes under torchrun (gloo) take the same
optimisation path as one process with the same global batch."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from laom.cli import main
from laom.data.sampler import BatchSampler, FrameData
from laom.models import load_lam, load_model
from laom.training.distributed import ShardedSampler
from laom.training.synthetic import write_moving_square

HW = 16
COMMON = ["--progress", "false", "--precision", "fp32", "--threads", "1", "--log_every", "1"]
LAM = ["--batch_size", "8", "--latent_dim", "8", "--head_dim", "16", "--labeled_batch_size", "4",
       "--probe_samples", "100", "--probe_eval_samples", "100", "--use_aug", "false", "--total_updates", "6"]  # fmt: skip


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAOM_NO_REEXEC": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "laom.cli", *args]  # fmt: skip
    # Own session: a hung job is killed whole, not orphaned.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        # torchrun starts its workers in sessions of their own, so killing its group leaves
        # them holding the pipes (and communicate() waiting for ever): kill every descendant.
        for pid in [*descendants(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"torchrun timed out: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, from /proc (Linux, where these tests run)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_descendants_finds_grandchildren():
    """The timeout path above relies on it: a grandchild in its own session is found."""
    code = "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(30)'], start_new_session=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            if len(descendants(proc.pid)) == 1:
                break
            time.sleep(0.05)
        found = descendants(proc.pid)
        assert len(found) == 1
    finally:
        for pid in [*descendants(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ddpdata")
    return {
        "data": write_moving_square(d / "data.hdf5", 4, 24, img_hw=HW, seed=0),
        "labeled": write_moving_square(d / "labeled.hdf5", 2, 24, img_hw=HW, seed=1),
    }


def test_sharded_sampler_splits_the_global_batch():
    rng = np.random.default_rng(0)
    n = 60
    data = FrameData(
        frames=rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8),
        actions=rng.normal(size=(n, 2)).astype(np.float32),
        states=rng.normal(size=(n, 3)).astype(np.float32),
        traj_offsets=np.array([0, 30, 60]),
    )
    whole = BatchSampler(data, 8, 3, 5, seed=1).batch(4)
    parts = [ShardedSampler(BatchSampler(data, 8, 3, 5, seed=1), r, 2).batch(4) for r in range(2)]
    assert np.array_equal(np.concatenate([p.steps for p in parts]), whole.steps)
    assert np.array_equal(np.concatenate([p.offsets for p in parts]), whole.offsets)
    for key in ("obs", "future_obs", "actions"):
        assert torch.equal(torch.cat([p.arrays[key] for p in parts]), whole.arrays[key])


@pytest.mark.parametrize("method", ["laom-labels", "lapo"])
def test_two_gloo_processes_match_one_process(files, tmp_path, method):
    base = ["train", "lam", "--method", method, "--data", str(files["data"]), *COMMON, *LAM]
    if method == "laom-labels":
        base += ["--labeled", str(files["labeled"])]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert main([*base, "--out", str(single)]) == 0
    proc = torchrun([*base, "--out", str(ddp)])
    assert proc.returncode == 0, proc.stderr[-2000:]

    a, _ = load_lam(single)
    b, _ = load_lam(ddp)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
    # Metrics are written once (rank 0), averaged over the ranks: the same losses.
    rows_a = (single / "metrics.jsonl").read_text().splitlines()
    rows_b = (ddp / "metrics.jsonl").read_text().splitlines()
    assert len(rows_a) == len(rows_b) == 6
    import json

    loss_a = [json.loads(r)["loss"] for r in rows_a]
    loss_b = [json.loads(r)["loss"] for r in rows_b]
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-4)
    summary = json.loads((ddp / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["action_probe_mse"] is not None


def test_two_gloo_processes_train_bc_baseline_like_one(files, tmp_path):
    base = ["train", "bc-baseline", "--data", str(files["data"]), *COMMON, "--batch_size", "8",
            "--total_updates", "5", "--min_updates", "0", "--shift_aug", "0"]  # augmentations are drawn per rank  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "single")]) == 0
    proc = torchrun([*base, "--out", str(tmp_path / "ddp")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = load_model(tmp_path / "single" / "policy.pt")[0].state_dict()
    b = load_model(tmp_path / "ddp" / "policy.pt")[0].state_dict()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_global_batch_must_divide_by_processes(files, tmp_path):
    base = ["train", "lam", "--method", "laom", "--data", str(files["data"]), *COMMON, *LAM,
            "--batch_size", "7", "--out", str(tmp_path / "odd")]  # fmt: skip
    proc = torchrun(base)
    assert proc.returncode != 0
    assert "--batch_size 7 must be divisible by the number of processes (2)" in proc.stderr


def test_two_gloo_processes_train_latent_bc_and_decoder_like_one(files, tmp_path):
    lam = tmp_path / "lam"
    assert main(["train", "lam", "--method", "laom", "--data", str(files["data"]), *COMMON, *LAM,
                 "--out", str(lam)]) == 0  # fmt: skip
    for mode in ("single", "ddp"):
        bc = ["train", "bc", "--lam", str(lam), "--data", str(files["data"]), *COMMON, "--batch_size", "8",
              "--total_updates", "4", "--cache_dtype", "float32", "--shift_aug", "0",
              "--out", str(tmp_path / f"bc-{mode}")]  # fmt: skip
        dec = ["train", "decoder", "--policy", str(tmp_path / f"bc-{mode}"), "--labeled", str(files["labeled"]),
               *COMMON, "--batch_size", "16", "--total_updates", "5", "--out", str(tmp_path / f"dec-{mode}")]  # fmt: skip
        for args in (bc, dec):
            if mode == "single":
                assert main(args) == 0
            else:
                proc = torchrun(args)
                assert proc.returncode == 0, proc.stderr[-2000:]
    a = load_model(tmp_path / "dec-single" / "policy.pt")[0]
    b = load_model(tmp_path / "dec-ddp" / "policy.pt")[0]
    for part in ("policy", "decoder"):
        for key, value in getattr(a, part).state_dict().items():
            torch.testing.assert_close(getattr(b, part).state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_only_train_commands_run_under_torchrun(files, tmp_path):
    proc = torchrun(["data", "info", str(files["data"])])
    assert proc.returncode != 0
    assert "under torchrun only `laom train ...` runs (got `laom data`)" in proc.stderr


@pytest.mark.parametrize("main_rank", [True, False])
@pytest.mark.parametrize("cache_present", [True, False])
def test_cached_labels_passes_the_barrier_once_on_every_rank(tmp_path, monkeypatch, main_rank, cache_present):
    """A rank that found rank 0's finished cache and skipped the barrier left rank 0
    waiting at it for ever (seen as a hung `train bc` under torchrun)."""
    from laom.training import bc, distributed

    path = tmp_path / "latents.npy"
    if cache_present:
        bc.cached_labels(path, {"lam": "x"}, (3, 2), "float32", lambda a: a.__setitem__(slice(None), 1.0))
    calls = {"barrier": 0, "compute": 0}
    monkeypatch.setattr(distributed, "is_main", lambda: main_rank)
    monkeypatch.setattr(distributed, "barrier", lambda: calls.__setitem__("barrier", calls["barrier"] + 1))

    def compute(array: np.ndarray) -> None:
        calls["compute"] += 1
        array[:] = 2.0

    if not main_rank and not cache_present:  # rank 0 writes it while this rank waits
        monkeypatch.setattr(distributed, "barrier", lambda: (
            calls.__setitem__("barrier", calls["barrier"] + 1),
            bc._write_labels(path, path.with_suffix(".json"), {"source": {"lam": "x"}, "shape": [3, 2],
                             "dtype": "float32"}, (3, 2), "float32", compute)))  # fmt: skip
    out = bc.cached_labels(path, {"lam": "x"}, (3, 2), "float32", compute)
    assert calls["barrier"] == 1
    assert calls["compute"] == (0 if cache_present else 1)
    assert out.shape == (3, 2)
