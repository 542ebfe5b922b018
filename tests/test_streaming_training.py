"""Training stages on streamed data (``--stream true``): bounded-cache reads, same results
where order does not matter, resumable where it does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import laom.training.trainlog as trainlog_mod
from laom.cli import main
from laom.models import load_lam
from laom.training.synthetic import write_moving_square

HW = 16
# ~2.5 trajectories of 24 frames per cache window: every epoch crosses several windows.
STREAM = ["--stream", "true", "--cache_mb", "0.12"]
COMMON = ["--progress", "false", "--precision", "fp32", "--threads", "1"]
LAM = ["--batch_size", "8", "--latent_dim", "8", "--head_dim", "16", "--probe_samples", "60",
       "--probe_eval_samples", "60", "--total_updates", "7", "--checkpoint_every", "3", "--log_every", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("streamtrain")
    return {
        "data": write_moving_square(d / "data.hdf5", 8, 24, img_hw=HW, seed=0),
        "labeled": write_moving_square(d / "labeled.hdf5", 2, 24, img_hw=HW, seed=1),
        "eval": write_moving_square(d / "eval.hdf5", 2, 24, img_hw=HW, seed=2, split="eval"),
    }


def test_streamed_lam_run_resumes_to_the_uninterrupted_result(files, tmp_path, monkeypatch):
    args = ["train", "lam", "--method", "laom", "--data", str(files["data"]), *COMMON, *LAM, *STREAM]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0

    original = trainlog_mod.Progress.update

    def killing_update(self, update, **postfix):
        original(self, update, **postfix)
        if update == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainlog_mod.Progress, "update", killing_update)
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 130
    monkeypatch.setattr(trainlog_mod.Progress, "update", original)
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 0
    a, _ = load_lam(tmp_path / "full")
    b, _ = load_lam(tmp_path / "resumed")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_streamed_lam_probe_uses_eval_data(files, tmp_path):
    out = tmp_path / "lam"
    args = ["train", "lam", "--method", "laom-labels", "--data", str(files["data"]), "--labeled",
            str(files["labeled"]), "--eval-data", str(files["eval"]), *COMMON, *LAM, *STREAM,
            "--labeled_batch_size", "4", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["probe_test_samples"] > 0 and np.isfinite(summary["action_probe_mse"])


def test_streamed_bc_labels_every_transition_like_in_memory(files, tmp_path):
    lam = tmp_path / "lam"
    assert main(["train", "lam", "--method", "laom", "--data", str(files["data"]), *COMMON, *LAM,
                 "--out", str(lam)]) == 0  # fmt: skip
    bc = ["train", "bc", "--lam", str(lam), "--data", str(files["data"]), *COMMON,
          "--batch_size", "8", "--total_updates", "4", "--cache_dtype", "float32"]  # fmt: skip
    assert main([*bc, "--out", str(tmp_path / "mem")]) == 0
    assert main([*bc, *STREAM, "--out", str(tmp_path / "stream")]) == 0
    mem = np.load(tmp_path / "mem" / "latents.npy")
    streamed = np.load(tmp_path / "stream" / "latents.npy")
    np.testing.assert_allclose(streamed, mem, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stage", ["bc-baseline", "idm-bc"])
def test_streamed_baselines_train(files, tmp_path, stage):
    args = ["train", stage, "--data", str(files["data"]), *COMMON, *STREAM, "--batch_size", "8",
            "--total_updates", "4", "--min_updates", "0", "--out", str(tmp_path / stage)]  # fmt: skip
    if stage == "idm-bc":  # the IDM reads --labeled whole; its policy streams --data
        idm = tmp_path / "idm"
        assert main(["train", "idm", "--labeled", str(files["labeled"]), *COMMON, "--idm_updates", "3",
                     "--idm_batch_size", "8", "--out", str(idm)]) == 0  # fmt: skip
        args += ["--idm", str(idm)]
    assert main(args) == 0
    assert (tmp_path / stage / "policy.pt").is_file()


def test_stream_cache_too_small_is_one_line_error(files, tmp_path, capsys):
    args = ["train", "lam", "--method", "laom", "--data", str(files["data"]), *COMMON, *LAM,
            "--stream", "true", "--cache_mb", "0.01", "--out", str(tmp_path / "x")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("laom: error: --cache_mb 0.01 is too small") and "\n" not in err
