"""The LAM training stage: presets, CLI, errors, resume, determinism, and learning on a
synthetic task whose true latent action is known."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

import laom
import laom.training.lam as lam_mod
import laom.training.rundir as rundir_mod
import laom.training.trainlog as trainlog_mod
from laom.cli import main
from laom.errors import LaomError
from laom.methods import lam_reads_labels
from laom.models import load_lam
from laom.training.config import parse_config, resolve_preset
from laom.training.lam import CONFIGS, train_lam
from laom.training.metrics import read_metrics
from laom.training.optim import schedule_lengths, warmup_linear_decay
from laom.training.presets import preset_file
from laom.training.summaries import LAMSummary
from laom.training.synthetic import write_moving_square

HW = 16
# Tiny and single-threaded: fast, and immune to OpenMP stalls on a shared machine.
TINY = ["--batch_size", "8", "--latent_dim", "8", "--head_dim", "16", "--labeled_batch_size", "4",
        "--progress", "false", "--threads", "1", "--probe_samples", "200", "--probe_eval_samples", "200"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lamdata")
    out = {
        "data": write_moving_square(d / "data.hdf5", 4, 24, img_hw=HW, seed=0),
        "labeled": write_moving_square(d / "labeled.hdf5", 2, 24, img_hw=HW, seed=1),
        "eval": write_moving_square(d / "eval.hdf5", 2, 24, img_hw=HW, seed=2, split="eval"),
        "other_task": write_moving_square(
            d / "other.hdf5", 2, 24, img_hw=HW, seed=3, task=("reacher", "easy")
        ),
        "other_size": write_moving_square(d / "big.hdf5", 2, 24, img_hw=24, seed=3),
    }
    empty = d / "empty.hdf5"
    with h5py.File(empty, "w") as f:
        for k, v in dict(domain_name="square", task_name="move", img_hw=HW).items():
            f.attrs[k] = v
    out["empty"] = empty
    return out


def cfg_for(method: str, files: dict[str, Path], out: Path, **kw) -> lam_mod.LAMConfig:
    args = [*TINY, "--precision", "fp32"]
    cfg = parse_config(CONFIGS[method], None, args, data=str(files["data"]), out=str(out),
                       labeled=str(files["labeled"]) if lam_reads_labels(method) else None)  # fmt: skip
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize("method", ["lapo", "laom", "laom-labels", "lapo-labels"])
def test_cpu_presets_are_the_code_defaults(method):
    raw = yaml.safe_load(preset_file("cpu", f"lam-{method}").read_text())
    defaults = CONFIGS[method]()
    for key, value in raw.items():
        got = getattr(defaults, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


@pytest.mark.parametrize("method", ["lapo", "laom", "laom-labels", "lapo-labels"])
def test_paper_presets_hold_table_5(method):
    cfg = parse_config(CONFIGS[method], preset_file("paper", f"lam-{method}"), [])
    assert (cfg.batch_size, cfg.epochs, cfg.learning_rate, cfg.warmup_epochs) == (512, 10, 1e-4, 3)
    assert (cfg.future_offset, cfg.latent_dim, cfg.encoder_scale, cfg.num_res_blocks) == (
        10,
        8192,
        6,
        2,
    )
    assert cfg.frame_stack == 3 and cfg.weight_decay == 0 and cfg.grad_clip is None
    assert cfg.encoder_channels == (16, 32, 32)
    if method in ("lapo", "lapo-labels"):
        assert cfg.fsq_levels == (2, 2, 4) and not cfg.use_aug
    else:
        assert cfg.use_aug and cfg.head_dim == 1024 and cfg.head_blocks == 3
    if method == "laom":
        assert cfg.target == "ema" and cfg.target_tau == 0.001
    if method == "laom-labels":
        # The release's train_laom_labels.py: EMA target, the action loss on raw actions.
        assert cfg.target == "ema" and cfg.labeled_batch_size == 128 and cfg.label_coef == 0.001
        assert cfg.label_norm == "raw"
    if method == "lapo-labels":  # not in the paper: its LAPO with LAOM+supervision's labelled settings
        assert (cfg.labeled_batch_size, cfg.label_coef, cfg.label_norm) == (128, 0.001, "raw")


def test_overrides_and_unknown_fields():
    preset = resolve_preset("paper", "lam-laom")
    assert preset == preset_file("paper", "lam-laom")
    cfg = parse_config(
        CONFIGS["laom"],
        preset,
        ["--batch_size", "32", "--fsq_levels", "[3,3]", "--grad_clip", "1.0"],
    )
    assert (
        cfg.batch_size == 32
        and cfg.fsq_levels == (3, 3)
        and cfg.grad_clip == 1.0
        and cfg.latent_dim == 8192
    )
    with pytest.raises(LaomError, match="unknown option --batch_sise"):
        parse_config(CONFIGS["laom"], None, ["--batch_sise", "3"])
    with pytest.raises(LaomError, match="--batch_size many: expected an integer"):
        parse_config(CONFIGS["laom"], None, ["--batch_size", "many"])


def test_schedule_is_linear_warmup_then_linear_decay():
    factors = [warmup_linear_decay(u, 4, 12) for u in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))


def test_epoch_transitions_keeps_a_presets_schedule_on_a_larger_file():
    """The CPU preset's 1 epoch + 0.3 warmup on its 100k reference file is 1,563 updates
    with 469 of warmup; on a 5x larger file the cap gives the same, and a file smaller
    than the cap (a labelled subset) keeps its own epochs."""
    cfg = CONFIGS["laom"](epoch_transitions=100_000)
    reference = schedule_lengths(CONFIGS["laom"](), 100_000 // 64)
    assert reference == (1562, 469)
    assert schedule_lengths(cfg, 500_000 // 64) == reference
    assert schedule_lengths(cfg, 2_000 // 64) == schedule_lengths(CONFIGS["laom"](), 2_000 // 64) == (31, 9)
    assert schedule_lengths(CONFIGS["laom"](), 500_000 // 64)[0] == 7812  # without the cap: 5x longer
    assert schedule_lengths(CONFIGS["laom"](epoch_transitions=100_000, total_updates=40), 500_000 // 64)[0] == 40


# --------------------------------------------------------------------------- CLI errors


def fails(argv: list[str], capsys, fragment: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_cli_errors_are_one_line(files, tmp_path, capsys):
    base = ["train", "lam", "--data", str(files["data"]), *TINY]
    fails(
        [*base, "--method", "laom-labels", "--out", str(tmp_path / "a")], capsys, "needs --labeled"
    )
    fails([*base, "--method", "lapo-labels", "--out", str(tmp_path / "a")], capsys, "--method lapo-labels needs --labeled")
    fails([*base, "--method", "laom-labels", "--labeled", str(files["other_task"]), "--out", str(tmp_path / "b")],
          capsys, "reacher-easy")  # fmt: skip
    fails([*base, "--method", "laom-labels", "--labeled", str(files["other_size"]), "--out", str(tmp_path / "c")],
          capsys, "24x24 frames, but --data")  # fmt: skip
    fails([*base, "--method", "laom-labels", "--labeled", str(files["empty"]), "--out", str(tmp_path / "d")],
          capsys, "no trajectories")  # fmt: skip
    fails(
        [*base, "--method", "laom", "--out", str(tmp_path / "e"), "--nonsense", "1"],
        capsys,
        "unknown option --nonsense",
    )
    fails(
        [*base, "--method", "laom", "--out", str(tmp_path / "f"), "--config", "nopreset"],
        capsys,
        "no preset",
    )
    fails(["train", "lam", "--method", "laom", "--data", str(tmp_path / "missing.hdf5"), "--out", str(tmp_path / "g")],
          capsys, "no such file")  # fmt: skip
    for flag, value, match in (("--label_norm", "foo", "--label_norm foo"), ("--probe_every", "-1", "--probe_every -1"),
                               ("--online_probe_lr", "-1", "--online_probe_lr -1"), ("--probe_curve_samples", "0", "probe_curve_samples")):
        fails([*base, "--method", "laom", "--out", str(tmp_path / "h"), flag, value], capsys, match)
        assert not (tmp_path / "h").exists()


def test_resume_refuses_other_config_and_mismatched_data(files, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data.hdf5"
    write_moving_square(data, 2, 20, img_hw=HW, seed=0)
    out = str(tmp_path / "run")
    args = ["train", "lam", "--method", "laom", "--data", str(data), "--out", out, *TINY]
    # Killed after its last checkpoint, before the summary (which prunes the checkpoints).
    monkeypatch.setattr(rundir_mod.RunDir, "prune_checkpoints", lambda self: None)
    assert main([*args, "--total_updates", "2"]) == 0
    (Path(out) / "summary.json").unlink()
    fails([*args, "--total_updates", "2", "--latent_dim", "4"], capsys, "different config")
    # The same files and run directory written relative to the working directory: a resume.
    monkeypatch.chdir(tmp_path)
    relative = ["train", "lam", "--method", "laom", "--data", "data.hdf5", "--out", "run", *TINY]
    assert main([*relative, "--total_updates", "2"]) == 0
    assert (Path(out) / "summary.json").is_file()
    (Path(out) / "summary.json").unlink()
    write_moving_square(data, 2, 20, img_hw=24, seed=0)  # same path, other image size
    fails(
        [*args, "--total_updates", "2"], capsys, "image size 24 does not match the checkpoint's 16"
    )


# --------------------------------------------------------------------------- resume / determinism


def _state(run: Path) -> dict[str, torch.Tensor]:
    model, _ = load_lam(run)
    return model.state_dict()


@pytest.mark.parametrize("method", ["laom", "laom-labels", "lapo", "lapo-labels"])
def test_killed_and_resumed_run_equals_uninterrupted_run(files, tmp_path, monkeypatch, method):
    kw = dict(total_updates=7, checkpoint_every=3, log_every=1, use_aug=True)
    full = train_lam(cfg_for(method, files, tmp_path / "full", **kw))

    calls = {"n": 0}
    original = trainlog_mod.Progress.update

    def killing_update(self, update, **postfix):
        original(self, update, **postfix)
        calls["n"] += 1
        if update == 5:  # after the checkpoint at 3, before the one at 6
            raise KeyboardInterrupt

    monkeypatch.setattr(trainlog_mod.Progress, "update", killing_update)
    with pytest.raises(KeyboardInterrupt):
        train_lam(cfg_for(method, files, tmp_path / "resumed", **kw))
    monkeypatch.setattr(trainlog_mod.Progress, "update", original)
    assert (
        torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=False)["update"]
        == 3
    )
    resumed = train_lam(cfg_for(method, files, tmp_path / "resumed", **kw))

    for key, value in _state(tmp_path / "full").items():
        assert torch.equal(value, _state(tmp_path / "resumed")[key]), key
    rows_full, rows_resumed = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "resumed")
    assert [r["update"] for r in rows_resumed] == list(range(1, 8))
    assert [r["loss"] for r in rows_full] == [r["loss"] for r in rows_resumed]
    assert full.action_probe_mse == resumed.action_probe_mse
    assert (
        train_lam(cfg_for(method, files, tmp_path / "resumed", **kw)) == resumed
    )  # finished: no-op


@pytest.mark.parametrize("method", ["laom", "lapo"])
def test_probe_curve_and_online_probe(files, tmp_path, method):
    """Closed-form probe points at 0, every N updates and the end, each with the online
    probe's (the release's protocol) loss beside it; a resumed run adds only missing points."""
    cfg = cfg_for(method, files, tmp_path / "run", total_updates=7, probe_every=3, probe_curve_samples=50,
                  log_every=1, eval_data=str(files["eval"]))  # fmt: skip
    summary = train_lam(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "probe_curve.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [0, 3, 6, 7]
    assert [r["samples"] for r in rows] == [0, 24, 48, 56]
    assert rows[0]["online_probe_mse"] is None and rows[-1]["online_probe_mse"] > 0
    assert all(0 < r["action_probe_rel"] for r in rows)
    assert summary.online_probe_mse == pytest.approx(rows[-1]["online_probe_mse"])
    assert summary.online_probe_rel > 0
    (tmp_path / "run" / "summary.json").unlink()
    train_lam(cfg)
    again = (tmp_path / "run" / "probe_curve.jsonl").read_text().splitlines()
    assert [json.loads(line)["update"] for line in again] == [0, 3, 6, 7]
    off = train_lam(cfg_for(method, files, tmp_path / "off", total_updates=2, online_probe=False))
    assert off.online_probe_mse is None


def test_label_norm_standardises_the_supervised_actions(files, tmp_path):
    """variance: the action head regresses standardised actions (the loss does not scale
    with the expert's action units); raw: the release's loss on the stored actions."""
    std = train_lam(cfg_for("laom-labels", files, tmp_path / "std", total_updates=2, log_every=1))
    raw = train_lam(cfg_for("laom-labels", files, tmp_path / "raw", total_updates=2, log_every=1, label_norm="raw"))
    first = [read_metrics(tmp_path / name)[0]["action_loss"] for name in ("std", "raw")]
    assert first[0] != first[1]
    # Scaling the labelled actions by 10 leaves the standardised loss unchanged.
    scaled = tmp_path / "scaled.hdf5"
    scaled.write_bytes(Path(files["labeled"]).read_bytes())
    with h5py.File(scaled, "r+") as f:
        for name in [k for k in f if k.isdigit()]:
            f[name]["actions"][...] = f[name]["actions"][()] * 10
    cfg = cfg_for("laom-labels", files, tmp_path / "std10", total_updates=2, log_every=1, labeled=str(scaled))
    train_lam(cfg)
    assert read_metrics(tmp_path / "std10")[0]["action_loss"] == pytest.approx(first[0], rel=1e-4)
    assert std.final["loss"] > 0 and raw.final["loss"] > 0


def test_lapo_labels_run_loads_back_and_relabels(files, tmp_path, capsys):
    """A trained LAPO+supervision LAM: its head trains on standardised labelled actions
    every update, its file rebuilds it (laom.load_lam, as later stages load it) and
    `laom relabel` writes the latents that model gives."""
    from laom.data.relabel import LATENT_ACTIONS

    run = tmp_path / "run"
    summary = train_lam(cfg_for("lapo-labels", files, run, total_updates=3, log_every=1))
    assert summary.method == "lapo-labels" and np.isfinite(summary.action_probe_mse)
    assert [r["update"] for r in read_metrics(run)] == [1, 2, 3]
    assert all(r["action_loss"] > 0 and r["fdm_loss"] > 0 for r in read_metrics(run))
    payload = torch.load(run / "lam.pt", weights_only=False)
    assert payload["class"] == "lapo" and payload["meta"]["method"] == "lapo-labels"
    assert payload["kwargs"]["action_dim"] == 2 and payload["kwargs"]["fsq_levels"] == [2, 2, 4]
    lam = laom.load_lam(run)
    assert lam.method == "lapo-labels" and lam.module.action_head.out_features == 2 and lam.module.fsq is not None
    with h5py.File(files["data"], "r") as f:
        frames = f["0"]["obs"][()]
    z = lam.encode(frames)
    assert z.shape == (len(frames) - 1, 8)
    out = tmp_path / "relabelled.hdf5"
    assert main(["relabel", "--lam", str(run), "--data", str(files["data"]), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["0"][LATENT_ACTIONS][()], z, rtol=1e-5, atol=1e-6)


def test_seed_changes_the_run_and_same_seed_repeats_it(files, tmp_path):
    a = train_lam(cfg_for("laom", files, tmp_path / "a", total_updates=3))
    b = train_lam(cfg_for("laom", files, tmp_path / "b", total_updates=3))
    c = train_lam(cfg_for("laom", files, tmp_path / "c", total_updates=3, seed=1))
    assert a.final == b.final and a.final != c.final


# --------------------------------------------------------------------------- run directory and CLI


@pytest.mark.integration
@pytest.mark.parametrize("method", ["lapo", "laom", "laom-labels", "lapo-labels"])
def test_cli_end_to_end(files, tmp_path, capsys, method):
    out = tmp_path / method
    argv = ["train", "lam", "--method", method, "--data", str(files["data"]), "--eval-data", str(files["eval"]),
            "--out", str(out), *TINY, "--total_updates", "4", "--log_every", "2", "--checkpoint_every", "2"]  # fmt: skip
    if lam_reads_labels(method):
        argv += ["--labeled", str(files["labeled"])]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    summary = json.loads((out / "summary.json").read_text())
    assert printed["action_probe_mse"] == summary["action_probe_mse"]
    assert summary["probe_test_set"] == str(files["eval"]) and summary["updates"] == 4
    for key in (
        "action_probe_mse",
        "action_probe_baseline_mse",
        "state_probe_mse",
        "samples_per_s",
    ):
        assert np.isfinite(summary[key]), key
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["method"] == method and cfg["batch_size"] == 8 and cfg["data"] == str(files["data"])
    assert [r["update"] for r in read_metrics(out)] == [2, 4]
    model, meta = load_lam(out)
    assert meta.img_hw == HW and meta.frame_stack == 3 and meta.method == method
    # Finished: the checkpoints (only a resume reads them) are gone; the summary says which code made it.
    assert not (out / "checkpoints").exists()
    assert summary["laom_version"] == laom.__version__ and "git_commit" in summary


def test_optional_loggers_say_how_to_install(files, tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(LaomError, match="pip install"):
            train_lam(cfg_for("laom", files, tmp_path / "tb", total_updates=1, tensorboard=True))
    else:
        pytest.skip("tensorboard installed")


@pytest.mark.integration
def test_laom_entry_point_restarts_with_malloc_settings(files, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    cmd = [sys.executable, "-m", "laom", "train", "lam", "--method", "laom", "--data", str(files["data"]),
           "--out", str(out), *TINY, "--total_updates", "1"]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    assert json.loads((out / "summary.json").read_text())["malloc_mmap_threshold"] == "8000000000"


# --------------------------------------------------------------------------- learning


@pytest.mark.integration
def test_lapo_pixel_loss_falls(tmp_path):
    plain = {
        "data": write_moving_square(
            tmp_path / "plain.hdf5", 4, 24, img_hw=HW, seed=0, distractors=False
        )
    }
    cfg = cfg_for("lapo", plain, tmp_path / "lapo", total_updates=60, log_every=1, learning_rate=1e-3,
                  warmup_epochs=0.0, batch_size=16)  # fmt: skip
    train_lam(cfg)
    losses = [r["fdm_loss"] for r in read_metrics(tmp_path / "lapo")]
    assert np.mean(losses[-10:]) < 0.5 * losses[0], losses


@pytest.mark.integration
def test_supervision_makes_latent_actions_linearly_decodable_despite_distractors(tmp_path):
    """Square displacement = action, under a drifting textured background and a second,
    uncontrolled square. With a few labels during LAM training the probe MSE drops far
    below the action variance; plain LAOM stays near it (the paper's finding)."""
    d = {name: write_moving_square(tmp_path / f"{name}.hdf5", n, 100, img_hw=HW, seed=s)
         for name, n, s in (("data", 30, 0), ("labeled", 30, 1), ("eval", 3, 2))}  # fmt: skip
    common = ["--batch_size", "32", "--labeled_batch_size", "32", "--latent_dim", "32", "--head_dim", "64",
              "--future_offset", "1", "--use_aug", "false", "--learning_rate", "6e-4", "--warmup_epochs", "0",
              "--label_coef", "1.0", "--total_updates", "500", "--precision", "fp32", "--threads", "1",
              "--progress", "false"]  # fmt: skip

    def run(method: str) -> LAMSummary:
        cfg = parse_config(CONFIGS[method], None, common, data=str(d["data"]), eval_data=str(d["eval"]),
                           labeled=str(d["labeled"]), out=str(tmp_path / method))  # fmt: skip
        return train_lam(cfg)

    supervised = run("laom-labels")
    variance = supervised.action_probe_baseline_mse
    assert supervised.action_probe_mse < 0.5 * variance, supervised
    unsupervised = run("laom")
    assert unsupervised.action_probe_mse > supervised.action_probe_mse


def test_online_probe_trains_at_the_lams_rate_unless_told(files, tmp_path):
    """The release's protocol trains its probe at the LAM's learning rate; an explicit
    --online_probe_lr overrides it (this project's earlier 1e-3)."""
    from laom.data.sampler import load_frames
    from laom.training.runtime import setup_runtime

    data = load_frames(str(files["data"]))
    for given, expected in ((0.0, 3e-4), (1e-3, 1e-3)):
        cfg = cfg_for("laom", files, tmp_path / "p", learning_rate=3e-4, online_probe_lr=given)
        trainer = lam_mod.LAMTrainer(cfg, data, None, setup_runtime(cfg))
        assert trainer.probe_optimizer.param_groups[0]["lr"] == pytest.approx(expected)
