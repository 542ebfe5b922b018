"""The stages after the LAM (latent BC, action decoder), the IDM and BC baselines and
``laom evaluate``, end to end through the CLI on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from laom.cli import main
from laom.errors import LaomError
from laom.training.synthetic import write_moving_square

HW = 16
FAST = ["--threads", "1", "--progress", "false"]
TINY_LAM = [
    "--batch_size", "16", "--epochs", "1", "--latent_dim", "16", "--head_dim", "32", "--head_blocks", "1",
    "--encoder_channels", "[8,8,8]", "--frame_stack", "2", "--probe_samples", "100", "--probe_eval_samples", "100",
]  # fmt: skip
TINY_BC = ["--batch_size", "16", "--epochs", "1", "--encoder_channels", "[8,8,8]"]
TINY_DECODER = ["--batch_size", "32", "--total_updates", "20", "--hidden_dim", "32"]
TINY_BASELINE = ["--batch_size", "16", "--epochs", "1", "--min_updates", "10", "--encoder_channels", "[8,8,8]", "--frame_stack", "2"]
TINY_IDM = ["--encoder_channels", "[8,8,8]", "--frame_stack", "2", "--idm_updates", "10", "--idm_batch_size", "16",
            "--idm_head_dim", "32"]  # fmt: skip
TINY_IDM_BC = ["--batch_size", "16", "--epochs", "1", "--min_updates", "10", "--encoder_channels", "[8,8,8]"]


def square(path: Path, trajectories: int, length: int, seed: int, task: tuple[str, str] = ("square", "move")) -> Path:
    return write_moving_square(path, trajectories, length, img_hw=HW, seed=seed, task=task)


def set_actions(path: Path, fn) -> Path:
    """Replace every trajectory's actions by ``fn(states)``."""
    with h5py.File(path, "r+") as f:
        for name in [k for k in f if k.isdigit()]:
            actions = fn(f[name]["states"][()]).astype(np.float32)
            del f[name]["actions"]
            f[name].create_dataset("actions", data=actions)
    return path


def cheetah(path: Path, trajectories: int = 2, length: int = 20, seed: int = 5) -> Path:
    """Synthetic frames labelled as cheetah-run (6-d actions), so the policy can act in it."""
    square(path, trajectories, length, seed, task=("cheetah", "run"))
    with h5py.File(path, "r+") as f:
        f.attrs["difficulty"] = "vanilla"
        f.attrs["dynamic"] = False
    return set_actions(path, lambda s: np.tanh(np.tile(s[:, :2], 3)))


def ok(args: list[str]) -> None:
    assert main(args) == 0, args


def fails(args: list[str], capsys: pytest.CaptureFixture, match: str) -> str:
    capsys.readouterr()
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip()
    assert err.startswith("laom: error:") and "\n" not in err, err
    assert match in err, err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("stages")
    return {
        "data": square(d / "data.h5", 4, 30, seed=0),
        "labeled": square(d / "labeled.h5", 2, 20, seed=1),
        "other_task": square(d / "other.h5", 2, 20, seed=2, task=("reacher", "easy")),
        "other_size": write_moving_square(d / "big.h5", 2, 20, img_hw=24, seed=3),
        "dir": d,
    }


def make_lam_run(path: Path, img_hw: int = HW, action_dim: int = 2) -> Path:
    """An untrained LAM saved like a finished run (enough for the data checks)."""
    from laom.models import LAOM, save_model

    path.mkdir(parents=True)
    model = LAOM((6, img_hw, img_hw), latent_dim=8, channels=(8, 8, 8), head_dim=16, head_blocks=1)
    meta = {"method": "laom", "img_hw": img_hw, "frame_stack": 2, "action_dim": action_dim, "state_dim": 4,
            "domain_name": "square", "task_name": "move", "latent_dim": 8}  # fmt: skip
    save_model(path / "lam.pt", model, meta)
    (path / "summary.json").write_text("{}")
    return path


def make_latent_run(path: Path) -> Path:
    """An untrained latent policy saved like a finished latent BC run."""
    from laom.models.policy import PixelPolicy
    from laom.models.saving import save_model

    path.mkdir(parents=True)
    meta = {"img_hw": HW, "frame_stack": 2, "action_dim": 2, "domain_name": "square", "task_name": "move",
            "latent_dim": 8, "outputs": "latent", "method": "laom"}  # fmt: skip
    save_model(path / "latent_policy.pt", PixelPolicy((6, HW, HW), 8, channels=(8, 8, 8)), meta)
    (path / "summary.json").write_text("{}")
    return path


# --------------------------------------------------------------------------- unit


def test_policy_save_load_round_trip(tmp_path: Path) -> None:
    from laom.models.policy import ActingPolicy, ActionDecoder, PixelPolicy
    from laom.models.saving import load_policy, save_model

    torch.manual_seed(0)
    policy = PixelPolicy((6, HW, HW), 8, channels=(8, 8, 8))
    decoder = ActionDecoder(8, 3, hidden_dim=16)
    meta = {"img_hw": HW, "frame_stack": 2, "action_dim": 3, "domain_name": "cheetah", "task_name": "run"}
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "policy.pt", ActingPolicy(policy, decoder, meta), meta)
    loaded = load_policy(run)
    obs = np.random.default_rng(0).integers(0, 256, (5, HW, HW, 6), dtype=np.uint8)
    expected = ActingPolicy(policy, decoder, meta).eval().act(obs)
    np.testing.assert_array_equal(loaded.act(obs), expected)
    assert loaded.meta.to_json() == meta and expected.shape == (5, 3)


def test_pixel_policy_pools_over_space() -> None:
    from laom.models.policy import PixelPolicy

    policy = PixelPolicy((6, 32, 32), 5, encoder_scale=2, channels=(4, 8, 8))
    assert policy(torch.zeros(3, 6, 32, 32)).shape == (3, 5)
    assert policy.head.in_features == 16  # channels of the last stage, not H*W*C


def test_policy_read_outs_and_their_round_trip(tmp_path: Path) -> None:
    """Flattened map + MLP head (the CPU recipe) and the release's pool-then-head both
    rebuild from the policy file; an unknown read-out is refused."""
    from laom.models.policy import ActingPolicy, PixelPolicy
    from laom.models.saving import load_policy, save_model

    obs = np.random.default_rng(1).integers(0, 256, (4, HW, HW, 6), dtype=np.uint8)
    meta = {"img_hw": HW, "frame_stack": 2, "action_dim": 3, "domain_name": "cheetah", "task_name": "run"}
    for kwargs in (dict(pooling="flatten", hidden_dim=16), dict(relu_before_pool=False)):
        torch.manual_seed(0)
        policy = PixelPolicy((6, HW, HW), 3, channels=(4, 8, 8), **kwargs)
        run = tmp_path / str(len(kwargs)) / kwargs.get("pooling", "mean")
        run.mkdir(parents=True)
        save_model(run / "policy.pt", policy, meta)
        expected = ActingPolicy(policy, None, meta).eval().act(obs)
        np.testing.assert_array_equal(load_policy(run).act(obs), expected)
    flat = PixelPolicy((6, 32, 32), 5, channels=(4, 8, 8), pooling="flatten", hidden_dim=7)
    assert flat.head[0].in_features == 8 * 4 * 4 and flat.head[0].out_features == 7
    # The release pools the raw map: negative features survive the average.
    raw = PixelPolicy((6, 32, 32), 5, channels=(4, 8, 8), relu_before_pool=False)
    ours = PixelPolicy((6, 32, 32), 5, channels=(4, 8, 8))
    ours.load_state_dict(raw.state_dict())
    x = torch.randn(2, 6, 32, 32)
    assert not torch.allclose(raw(x), ours(x))
    with pytest.raises(ValueError, match="pooling"):
        PixelPolicy((6, 32, 32), 5, pooling="max")


@pytest.mark.integration
def test_bc_learning_curve_and_shift_augmentation(tmp_path: Path) -> None:
    """--curve_every writes offline-MSE points at every N updates and at the end; a
    resumed run keeps them and adds only the missing ones."""
    train = set_actions(square(tmp_path / "train.h5", 4, 30, seed=10), lambda s: s[:, :2])
    test = set_actions(square(tmp_path / "test.h5", 2, 30, seed=11), lambda s: s[:, :2])
    out = tmp_path / "bc"
    args = ["train", "bc-baseline", "--data", str(train), "--eval-data", str(test), "--out", str(out),
            "--batch_size", "16", "--total_updates", "9", "--encoder_channels", "[4,8,8]", "--frame_stack", "1",
            "--pooling", "flatten", "--head_hidden", "16", "--shift_aug", "2", "--curve_every", "4",
            "--curve_episodes", "0", "--checkpoint_every", "4", *FAST]  # fmt: skip
    ok(args)
    rows = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [4, 8, 9]
    assert all(r["offline_action_mse"] > 0 and r["constant_action_mse"] > 0 for r in rows)
    # Kill after the last point: the curve file is kept as is on a resume.
    (out / "summary.json").unlink()
    ok(args)
    again = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [r["update"] for r in again] == [4, 8, 9]


def _policy_state(run: Path) -> dict[str, torch.Tensor]:
    from laom.models.saving import load_model

    model, _ = load_model(run / "policy.pt", torch.device("cpu"))
    return model.state_dict()


def test_policy_ema_is_what_acts_and_survives_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--policy_ema saves the average, not the last weights; a run killed between
    checkpoints and resumed saves the same average as an uninterrupted one (the average
    is in the checkpoint); at 0 the stage is the one runs and caches were made with."""
    import laom.training.trainlog as trainlog_mod
    from laom.training.baselines import BCBaselineConfig
    from laom.training.pipeline import stage_manifest
    from laom.training.rundir import same_setting

    train = set_actions(square(tmp_path / "train.h5", 4, 30, seed=10), lambda s: s[:, :2])

    def args(out: str, ema: str) -> list[str]:
        return ["train", "bc-baseline", "--data", str(train), "--out", str(tmp_path / out), "--batch_size", "8",
                "--total_updates", "7", "--encoder_channels", "[4,8,8]", "--frame_stack", "1", "--head_hidden", "8",
                "--checkpoint_every", "3", "--log_every", "1", "--policy_ema", ema, *FAST]  # fmt: skip

    ok(args("last", "0"))
    ok(args("full", "0.5"))
    last, full = _policy_state(tmp_path / "last"), _policy_state(tmp_path / "full")
    assert any(not torch.equal(last[k], full[k]) for k in last)  # the average is not the last weights

    original = trainlog_mod.Progress.update

    def killing_update(self, update, **postfix):
        original(self, update, **postfix)
        if update == 5:  # after the checkpoint at 3, before the one at 6
            raise KeyboardInterrupt

    monkeypatch.setattr(trainlog_mod.Progress, "update", killing_update)
    assert main(args("resumed", "0.5")) != 0  # the CLI reports the interruption
    monkeypatch.setattr(trainlog_mod.Progress, "update", original)
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=False)["update"] == 3
    ok(args("resumed", "0.5"))
    resumed = _policy_state(tmp_path / "resumed")
    for key, value in full.items():
        assert torch.equal(value, resumed[key]), key
    # Each metrics row carries the stage's training clock across the resume and where its
    # process began, which the report's compute table sums.
    from laom.experiments.compute import training_seconds

    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == list(range(1, 8))
    assert [r["start_update"] for r in rows] == [0, 0, 0, 3, 3, 3, 3]
    clocks = [r["train_s"] for r in rows]
    assert clocks == sorted(clocks) and clocks[-1] > 0
    assert training_seconds(rows, 8, 3) == (clocks[-1], 2)

    # At the default the field is not in a stage's key (keys made before it stay valid),
    # and a run whose config predates it resumes; set, it is part of both.
    class Stage:
        name, files, upstream = "bc-baseline", {}, {}

    at_default = stage_manifest(Stage, BCBaselineConfig(data="x"), {})["config"]
    assert "policy_ema" not in at_default
    assert stage_manifest(Stage, BCBaselineConfig(data="x", policy_ema=0.1), {})["config"]["policy_ema"] == 0.1
    assert same_setting("policy_ema", None, 0.0) and not same_setting("policy_ema", None, 0.1)
    # The same for --epoch_transitions (added with the study's larger files).
    assert "epoch_transitions" not in at_default
    assert stage_manifest(Stage, BCBaselineConfig(data="x", epoch_transitions=100), {})["config"]["epoch_transitions"] == 100
    assert same_setting("epoch_transitions", None, 0) and not same_setting("epoch_transitions", None, 100)
    # --precision auto is keyed as what it computes on this machine: "auto" where it is fp32
    # (the keys made before), "bf16" on an AMX CPU, as if typed.
    import laom.models.device as device

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    assert stage_manifest(Stage, BCBaselineConfig(data="x"), {})["config"]["precision"] == "auto"
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    bf16 = stage_manifest(Stage, BCBaselineConfig(data="x"), {})["config"]
    assert bf16["precision"] == "bf16" == stage_manifest(Stage, BCBaselineConfig(data="x", precision="bf16"), {})["config"]["precision"]


def test_decoder_resumed_at_its_end_reports_its_last_loss(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder killed after its last checkpoint but before its summary logs nothing when
    resumed; its final loss is read back from metrics.jsonl, not reported as NaN."""
    from laom.training.rundir import RunDir

    policy = make_latent_run(tmp_path / "bc")

    def args(out: str) -> list[str]:
        return ["train", "decoder", "--policy", str(policy), "--labeled", str(files["labeled"]),
                "--out", str(tmp_path / out), "--checkpoint_every", "10", "--log_every", "5", *TINY_DECODER, *FAST]  # fmt: skip

    ok(args("full"))
    original = RunDir.write_summary

    def killed(self, summary):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "write_summary", killed)
    assert main(args("resumed")) != 0
    monkeypatch.setattr(RunDir, "write_summary", original)
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=False)["update"] == 20
    ok(args("resumed"))
    full, resumed = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "resumed"))
    assert resumed["final_loss"] == full["final_loss"] and np.isfinite(resumed["final_loss"])


def test_policy_flags_are_checked(files: dict[str, Path], capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    base = ["train", "bc-baseline", "--data", str(files["data"]), "--out", str(tmp_path / "x"), *FAST]
    fails([*base, "--pooling", "max"], capsys, "--pooling max")
    fails([*base, "--shift_aug", "-1"], capsys, "--shift_aug -1")
    fails([*base, "--shift_aug", "2", "--use_aug", "true"], capsys, "choose one augmentation")
    fails([*base, "--head_hidden", "-3"], capsys, "--head_hidden -3")
    fails([*base, "--curve_every", "5", "--curve_episodes", "0"], capsys, "--curve_every needs")
    fails([*base, "--curve_every", "5"], capsys, "unknown task 'square-move'")
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- errors


def test_missing_run_dirs(files: dict[str, Path], capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    fails(["train", "bc", "--lam", str(tmp_path / "nope"), "--data", str(files["data"]), "--out", str(tmp_path / "o")], capsys, "no such run directory")
    fails(["train", "decoder", "--policy", str(tmp_path / "nope"), "--labeled", str(files["labeled"]), "--out", str(tmp_path / "o")], capsys, "no such run directory")
    fails(["evaluate", "--policy", str(tmp_path / "nope")], capsys, "no such run directory")
    (tmp_path / "unfinished").mkdir()
    fails(["train", "bc", "--lam", str(tmp_path / "unfinished"), "--data", str(files["data"]), "--out", str(tmp_path / "o")], capsys, "unfinished")
    latent = make_latent_run(tmp_path / "latent")
    fails(["evaluate", "--policy", str(latent)], capsys, "train an action decoder")


def test_data_must_match_the_checkpoint(files: dict[str, Path], capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    lam = make_lam_run(tmp_path / "lam")
    out = str(tmp_path / "bc")
    fails(["train", "bc", "--lam", str(lam), "--data", str(files["other_size"]), "--out", out, *FAST], capsys, "image size 24")
    fails(["train", "bc", "--lam", str(lam), "--data", str(files["other_task"]), "--out", out + "2", *FAST], capsys, "reacher-easy")
    wide = set_actions(square(tmp_path / "wide.h5", 2, 20, seed=4), lambda s: np.tile(s, 2))
    fails(["train", "bc", "--lam", str(lam), "--data", str(wide), "--out", out + "3", *FAST], capsys, "action size 8")

    latent = make_latent_run(tmp_path / "latent")
    dec = ["train", "decoder", "--policy", str(latent), *FAST]
    fails([*dec, "--labeled", str(files["other_task"]), "--out", str(tmp_path / "d1")], capsys, "reacher-easy")
    fails([*dec, "--labeled", str(files["other_size"]), "--out", str(tmp_path / "d2")], capsys, "image size")
    one_frame = tmp_path / "one_frame.h5"
    square(one_frame, 2, 1, seed=6)
    fails([*dec, "--labeled", str(one_frame), "--out", str(tmp_path / "d3")], capsys, "no transitions")
    empty = tmp_path / "empty.h5"
    with h5py.File(files["labeled"]) as src, h5py.File(empty, "w") as f:
        f.attrs.update(dict(src.attrs))
    fails([*dec, "--labeled", str(empty), "--out", str(tmp_path / "d4")], capsys, "no trajectories")

    idm = make_idm_run(tmp_path / "idm", files)
    idm_bc = ["train", "idm-bc", "--idm", str(idm), *FAST]
    fails([*idm_bc, "--data", str(files["other_task"]), "--out", str(tmp_path / "i1")], capsys, "reacher-easy")
    fails([*idm_bc, "--data", str(files["other_size"]), "--out", str(tmp_path / "i2")], capsys, "image size 24")


def test_unknown_field_is_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    fails(["train", "bc-baseline", "--data", str(files["labeled"]), "--out", str(tmp_path / "b"), "--bogus", "1"], capsys, "--bogus")


# --------------------------------------------------------------------------- end to end


@pytest.mark.integration
def test_latent_chain(files: dict[str, Path], tmp_path: Path) -> None:
    """LAM -> latent BC -> decoder through the CLI; the decoder run acts."""
    from laom.models.saving import load_policy

    lam, bc, dec = (str(tmp_path / n) for n in ("lam", "bc", "dec"))
    ok(["train", "lam", "--method", "laom", "--data", str(files["data"]), "--out", lam, *TINY_LAM, *FAST])
    ok(["train", "bc", "--lam", lam, "--data", str(files["data"]), "--out", bc, *TINY_BC, *FAST])
    summary = json.loads(Path(bc, "summary.json").read_text())
    assert summary["stage"] == "bc" and summary["latent_dim"] == 16 and summary["updates"] >= 1
    assert "cores" in summary["machine"]  # the CPU it was computed on (laom.outputs.machine)
    assert 0 < summary["peak_memory_gb"] < 24  # the stage process's peak, from the run's start
    latents = np.load(Path(bc, "latents.npy"))
    assert latents.shape == (120, 16) and latents.dtype == np.float16 and np.abs(latents).sum() > 0
    assert Path(bc, "latent_policy.pt").is_file() and Path(bc, "config.yaml").is_file()
    assert Path(bc, "metrics.jsonl").read_text().strip()

    ok(["train", "decoder", "--policy", bc, "--labeled", str(files["labeled"]), "--eval-data", str(files["labeled"]),
        "--out", dec, *TINY_DECODER, *FAST])  # fmt: skip
    summary = json.loads(Path(dec, "summary.json").read_text())
    assert summary["updates"] == 20 and summary["labeled_trajectories"] == 2
    assert summary["offline"]["samples"] == 38
    policy = load_policy(dec)
    assert policy.decoder is not None and policy.meta.outputs == "action"
    assert policy.meta.frame_stack == 2 and policy.meta.method == "laom"
    obs = np.random.default_rng(1).integers(0, 256, (3, HW, HW, 6), dtype=np.uint8)
    np.testing.assert_array_equal(policy.act(obs), load_policy(dec).act(obs))
    assert policy.act(obs).shape == (3, 2)
    # A finished stage is not trained again.
    before = Path(dec, "metrics.jsonl").read_text()
    ok(["train", "decoder", "--policy", bc, "--labeled", str(files["labeled"]), "--eval-data", str(files["labeled"]),
        "--out", dec, *TINY_DECODER, *FAST])  # fmt: skip
    assert Path(dec, "metrics.jsonl").read_text() == before


def make_idm_run(path: Path, files: dict[str, Path], *extra: str) -> Path:
    """A trained (tiny) IDM run on the labelled file: ``laom train idm``."""
    ok(["train", "idm", "--labeled", str(files["labeled"]), "--out", str(path), *TINY_IDM, *FAST, *extra])
    return path


@pytest.mark.integration
def test_idm_baseline(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Its two stages through the CLI: the IDM on --labeled alone, then the policy on the
    IDM's pseudo-labels of --data; each is its own run, resumed or reused alone."""
    from laom.models.saving import load_policy

    idm = make_idm_run(tmp_path / "idm", files)
    made = json.loads((idm / "summary.json").read_text())
    assert made["stage"] == "idm" and made["updates"] == 10 and made["labeled_trajectories"] == 2
    assert len(made["action_mean"]) == 2 and (idm / "idm.pt").is_file() and not (idm / "policy.pt").exists()
    assert yaml.safe_load((idm / "config.yaml").read_text())["labeled"] == str(files["labeled"])
    # The IDM is no acting policy: evaluating it says what to train on it.
    fails(["evaluate", "--policy", str(idm)], capsys, f"laom train idm-bc --idm {idm}")

    out = tmp_path / "idm-bc"
    args = ["train", "idm-bc", "--idm", str(idm), "--data", str(files["data"]), "--eval-data", str(files["labeled"]),
            "--out", str(out), *TINY_IDM_BC, *FAST]  # fmt: skip
    ok(args)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage"] == "idm-bc" and summary["method"] == "idm" and summary["updates"] == 10
    assert summary["idm_updates"] == 10 and summary["idm_final_loss"] == made["final_loss"]
    assert summary["labeled_trajectories"] == 2 and np.isfinite(summary["pseudo_label_mse"])
    assert {"action_mse", "constant_action_mse", "idm_action_mse"} <= set(summary["offline"])
    assert np.load(out / "pseudo_actions.npy").shape == (120, 2)
    policy = load_policy(out)
    assert policy.meta.method == "idm" and policy.meta.frame_stack == 2  # the IDM's stack
    # A finished stage is not trained again.
    before = (out / "metrics.jsonl").read_text()
    ok(args)
    assert (out / "metrics.jsonl").read_text() == before


def test_idm_stages_refuse_what_belongs_to_the_other(files: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """`laom train idm` trains the IDM alone: the policy's settings and files, which its
    one-stage command took, fail naming idm-bc; idm-bc wants a finished IDM run."""
    idm = ["train", "idm", "--labeled", str(files["labeled"]), "--out", str(tmp_path / "i"), *FAST]
    fails([*idm, "--data", str(files["data"])], capsys, "--data: a setting of stage idm-bc now (laom train idm-bc")
    fails([*idm, "--epochs", "2"], capsys, "--epochs: a setting of stage idm-bc now")
    fails(["config", "show", "idm", "--batch_size", "8"], capsys, "--batch_size: a setting of stage idm-bc now")
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "idm.yaml").write_text("idm_updates: 5\nepochs: 2\nbatch_size: 8\n")  # a one-stage idm.yaml
    fails([*idm, "--config", str(presets)], capsys, "batch_size, epochs: settings of stage idm-bc now, in its own idm-bc.yaml")
    bc = ["train", "idm-bc", "--data", str(files["data"]), "--out", str(tmp_path / "b"), *FAST]
    fails([*bc, "--idm", str(tmp_path / "none")], capsys, "no such run directory")
    fails([*bc, "--idm", str(make_lam_run(tmp_path / "lam"))], capsys, "no idm.pt")


def test_idm_release_architecture(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--idm_arch shared: one encoder per frame stack (the release's), the same stage otherwise."""
    from laom.models.idm import ActionIDM

    idm = ActionIDM((6, HW, HW), 3, channels=(4, 8, 8), head_dim=16, arch="shared", head_blocks=2)
    assert idm.encoder.in_shape == (6, HW, HW)  # one stack, not the pair
    assert idm(torch.zeros(5, 6, HW, HW), torch.zeros(5, 6, HW, HW)).shape == (5, 3)
    out = make_idm_run(tmp_path / "idm", files, "--idm_arch", "shared")
    kwargs = torch.load(out / "idm.pt", weights_only=False)["kwargs"]
    assert kwargs["arch"] == "shared"
    fails(["train", "idm", "--labeled", str(files["labeled"]), "--out", str(tmp_path / "bad"), "--idm_arch", "siamese",
           *FAST], capsys, "--idm_arch siamese")  # fmt: skip


@pytest.mark.integration
def test_bc_baseline_beats_constant(tmp_path: Path) -> None:
    """Actions = the square's position, visible in the frame: BC must beat the mean action."""
    train = set_actions(square(tmp_path / "train.h5", 6, 40, seed=10), lambda s: s[:, :2])
    test = set_actions(square(tmp_path / "test.h5", 2, 40, seed=11), lambda s: s[:, :2])
    out = tmp_path / "bc"
    ok(["train", "bc-baseline", "--data", str(train), "--eval-data", str(test), "--out", str(out),
        "--batch_size", "32", "--total_updates", "150", "--learning_rate", "1e-3", "--encoder_channels", "[8,16,16]",
        "--frame_stack", "1", *FAST])  # fmt: skip
    offline = json.loads((out / "summary.json").read_text())["offline"]
    assert offline["action_mse"] < 0.5 * offline["constant_action_mse"], offline


@pytest.mark.integration
def test_evaluate_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = cheetah(tmp_path / "cheetah.h5")
    run = tmp_path / "bc"
    ok(["train", "bc-baseline", "--data", str(data), "--out", str(run), *TINY_BASELINE, *FAST])
    capsys.readouterr()
    ok(["evaluate", "--policy", str(run), "--episodes", "2", "--max-steps", "5", "--seed", "3", "--normalizer", "2.0", "--no-progress"])
    out = capsys.readouterr().out
    assert "return" in out and "normalized" in out
    result = json.loads((run / "eval.json").read_text())
    assert result["lengths"] == [5, 5] and result["env"]["task"] == "cheetah-run"
    assert result["env"]["difficulty"] == "vanilla" and result["env"]["frame_stack"] == 2
    assert result["normalized_return"] == pytest.approx(result["mean"] / 2.0)
    assert Path(result["file"]).is_file()
    # Another (evaluated) run as the normaliser, e.g. BC-full.
    reference = tmp_path / "bc-full"
    reference.mkdir()
    (reference / "eval.json").write_text(json.dumps({"mean": 4.0}))
    ok(["evaluate", "--policy", str(run), "--episodes", "2", "--max-steps", "5", "--seed", "3", "--normalizer", str(reference), "--no-progress"])
    again = json.loads((run / "eval.json").read_text())
    assert again["returns"] == result["returns"]  # seeded episodes: the same returns
    assert again["normalized_return"] == pytest.approx(result["mean"] / 4.0)


def test_normalizer_errors(tmp_path: Path) -> None:
    from laom.evaluation.run import resolve_normalizer

    assert resolve_normalizer("823") == 823.0
    with pytest.raises(LaomError, match="non-zero"):
        resolve_normalizer("0")
    (tmp_path / "run").mkdir()
    with pytest.raises(LaomError, match="evaluate it first"):
        resolve_normalizer(str(tmp_path / "run"))
    with pytest.raises(LaomError, match="not a number"):
        resolve_normalizer(str(tmp_path / "missing"))


@pytest.mark.integration
def test_resume_refuses_data_that_changed_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from laom.training.rundir import RunDir

    data = square(tmp_path / "data.h5", 2, 20, seed=0)
    run = tmp_path / "bc"
    args = ["train", "bc-baseline", "--data", str(data), "--out", str(run), *TINY_BASELINE, *FAST]
    monkeypatch.setattr(RunDir, "prune_checkpoints", lambda self: None)
    ok(args)
    (run / "summary.json").unlink()  # as if killed after its last checkpoint, before the summary
    write_moving_square(data, 2, 20, img_hw=24, seed=0)  # same path, other image size
    fails(args, capsys, "image size 24 does not match the checkpoint's 16")


def test_latent_return_curve_from_snapshots(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """--snapshot_every keeps latent BC's policy along the way; the decoder's
    --snapshot_episodes trains a decoder per snapshot exactly as the final one is trained
    and scores each (and the final policy) in curve.jsonl; a resumed decoder adds only the
    missing points. Online episodes are faked here (synthetic task, no environment)."""
    from types import SimpleNamespace

    import laom.evaluation.online as online
    from laom.models.saving import load_model, load_policy_file
    from laom.training.bc import read_snapshots
    from laom.training.decoder import DecoderConfig, _fit_decoder, predict_latents
    from laom.training.rundir import RunDir

    evaluated: list[int] = []

    def fake_evaluate(act, env, episodes, **kw):  # the policy acts; its "return" is its mean action
        obs = np.zeros((1, HW, HW, 6), dtype=np.uint8)
        evaluated.append(episodes)
        return SimpleNamespace(mean=float(np.mean(act(obs))), std=0.0)

    monkeypatch.setattr(online, "evaluate", fake_evaluate)
    lam, bc, dec = (tmp_path / n for n in ("lam", "bc", "dec"))
    ok(["train", "lam", "--method", "laom", "--data", str(files["data"]), "--out", str(lam), *TINY_LAM, *FAST])
    ok(["train", "bc", "--lam", str(lam), "--data", str(files["data"]), "--out", str(bc), *TINY_BC,
        "--epochs", "3", "--snapshot_every", "5", *FAST])  # fmt: skip
    total = json.loads((bc / "summary.json").read_text())["updates"]
    snaps = read_snapshots(bc)
    assert [u for u, _ in snaps] == list(range(5, total, 5)) and len(snaps) >= 3
    first, _ = load_model(snaps[0][1], torch.device("cpu"))
    final, _ = load_model(bc / "latent_policy.pt", torch.device("cpu"))
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), final.state_dict().values(), strict=True))

    args = ["train", "decoder", "--policy", str(bc), "--labeled", str(files["labeled"]), "--eval-data",
            str(files["labeled"]), "--out", str(dec), "--snapshot_episodes", "3", *TINY_DECODER, *FAST]  # fmt: skip
    ok(args)
    rows = [json.loads(line) for line in (dec / "curve.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [*range(5, total, 5), total] and evaluated == [3] * len(rows)
    assert all(r["train_seconds"] >= 0 for r in rows)  # each point's decoder training, for the compute section
    summary = json.loads((dec / "summary.json").read_text())
    assert rows[-1]["offline_action_mse"] == pytest.approx(summary["offline"]["action_mse"])  # the final policy
    assert len({r["offline_action_mse"] for r in rows}) == len(rows)  # each point is its own policy
    # A point's decoder is the final decoder's recipe: on the final policy it gives the stage's decoder.
    cfg = DecoderConfig(policy=str(bc), labeled=str(files["labeled"]), out=str(dec), batch_size=32, total_updates=20,
                        hidden_dim=32)  # fmt: skip
    from laom.training.bc import load_labeled

    latent = load_policy_file(bc / "latent_policy.pt", torch.device("cpu"))
    labeled = load_labeled(str(files["labeled"]), latent.meta)
    z = predict_latents(latent.policy, labeled, 2, torch.device("cpu"), 256)
    # Filled batch by batch into one tensor: a batch size that does not divide the
    # transitions gives the same rows, in valid_steps order.
    assert len(z) == len(labeled.valid_steps) and len(z) % 7
    torch.testing.assert_close(predict_latents(latent.policy, labeled, 2, torch.device("cpu"), 7), z)
    actions = torch.from_numpy(labeled.actions[labeled.valid_steps])
    refit = _fit_decoder(cfg, z, actions, torch.device("cpu"))
    stage_decoder, _ = load_model(dec / "policy.pt", torch.device("cpu"))
    for k, v in refit.state_dict().items():
        torch.testing.assert_close(v, stage_decoder.decoder.state_dict()[k])

    # Killed during the curve: the rows kept stay, the missing one is added.
    (dec / "summary.json").unlink()
    kept = (dec / "curve.jsonl").read_text().splitlines()
    (dec / "curve.jsonl").write_text("\n".join(kept[:-2]) + "\n")
    evaluated.clear()
    ok(args)
    again = [json.loads(line) for line in (dec / "curve.jsonl").read_text().splitlines()]
    assert [r["update"] for r in again] == [r["update"] for r in rows] and len(evaluated) == 2
    # A latent BC without its summary (killed after saving its policy) has no update count.
    other = [*args[: args.index(str(dec))], str(tmp_path / "dec2"), *args[args.index(str(dec)) + 1 :]]
    (bc / "summary.json").rename(bc / "kept.json")
    fails(other, capsys, f"--policy {bc}: no summary.json")
    assert not (tmp_path / "dec2").exists()
    (bc / "kept.json").rename(bc / "summary.json")
    # A latent BC trained again from the start in its folder drops the earlier snapshots.
    RunDir(bc).set_aside_results()
    assert read_snapshots(bc) == []
