"""``laom config show STAGE``: the config ``laom train`` would run with, before it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import laom.training.baselines as baselines_mod
import laom.training.bc as bc_mod
import laom.training.decoder as decoder_mod
import laom.training.lam as lam_mod
from laom.cli import main
from laom.training.config import config_to_yaml, parse_config, resolve_preset
from laom.training.pipeline import preset_stages
from laom.training.presets import preset_file
from laom.training.rundir import RunDir
from laom.training.summaries import StageSummary
from laom.training.synthetic import write_moving_square

HW = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_moving_square(tmp_path_factory.mktemp("show") / "data.hdf5", 3, 20, img_hw=HW, seed=0)


def show(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(["config", "show", *argv]) == 0
    return capsys.readouterr().out


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture, fragment: str) -> None:
    capsys.readouterr()
    assert main(["config", "show", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("laom: error: ") and len(err.splitlines()) == 1 and fragment in err, err
    assert captured.out == ""


def test_show_is_what_a_real_training_run_writes_to_config_yaml(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--config", "paper", "--batch_size", "16",
            "--total_updates", "2", "--min_updates", "0", "--encoder_channels", "[8,8,8]",
            "--num_res_blocks", "1", "--threads", "1", "--progress", "false"]  # fmt: skip
    assert main(["train", "bc-baseline", *args]) == 0
    assert show(["bc-baseline", *args], capsys) == (out / "config.yaml").read_text()


def _prepare_only(cfg: Any) -> StageSummary:
    """A stage that writes its config.yaml as every stage does, then stops: the
    comparison needs the file, not the training."""
    RunDir(cfg.out).prepare(cfg)
    return StageSummary()


# (the command's flags, the stage's overrides): paths given as `laom train` takes them
# are config fields to `laom config show`.
TRAIN_CASES = [
    ("lam-laom", ["lam", "--method", "laom", "--data", "{data}"], ["--config", "paper", "--seed", "3"]),
    ("lam-lapo", ["lam", "--method", "lapo", "--data", "{data}"], ["--config", "demo", "--fsq_levels", "3", "3"]),
    ("lam-laom-labels", ["lam", "--method", "laom-labels", "--data", "{data}", "--labeled", "{data}"], []),
    ("bc", ["bc", "--lam", "{tmp}/lam", "--data", "{data}"], ["--config", "cpu", "--learning_rate", "1e-3"]),
    ("decoder", ["decoder", "--policy", "{tmp}/bc", "--labeled", "{data}", "--eval-data", "{data}"], ["--config", "paper"]),
    ("idm", ["idm", "--labeled", "{data}"], ["--config", "{presets}", "--idm_updates", "7"]),
    ("idm-bc", ["idm-bc", "--idm", "{tmp}/idm", "--data", "{data}", "--eval-data", "{data}"], ["--config", "{presets}"]),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "command", "settings"), TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_show_equals_the_config_yaml_of_train_for_every_stage(
    stage: str, command: list[str], settings: list[str], data: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    for module, name in ((lam_mod, "train_lam"), (bc_mod, "train_bc"), (decoder_mod, "train_decoder"),
                         (baselines_mod, "train_idm"), (baselines_mod, "train_idm_bc"),
                         (baselines_mod, "train_bc_baseline")):  # fmt: skip
        monkeypatch.setattr(module, name, _prepare_only)
    presets = tmp_path / "mine"  # a user's own folder of <stage>.yaml files
    presets.mkdir()
    (presets / "idm.yaml").write_text("idm_head_dim: 64\nframe_stack: 2\n")
    (presets / "idm-bc.yaml").write_text("batch_size: 32\n")
    fill = {"data": str(data), "tmp": str(tmp_path), "presets": str(presets)}
    command = [c.format(**fill) for c in command]
    settings = [s.format(**fill) for s in settings]
    out = tmp_path / "run"
    assert main(["train", *command, "--out", str(out), *settings]) == 0
    written = (out / "config.yaml").read_text()
    files = [("--eval_data" if c == "--eval-data" else c) for c in command[1:]]
    if stage.startswith("lam-"):
        files = files[2:]  # --method is the stage's name
    assert show([stage, *files, "--out", str(out), *settings], capsys) == written


def test_an_override_shows_up_over_the_preset(capsys) -> None:
    paper = yaml.safe_load(show(["lam-laom", "--config", "paper"], capsys))
    assert paper["latent_dim"] == 8192 and paper["batch_size"] == 512
    changed = yaml.safe_load(show(["lam-laom", "--config", "paper", "--batch_size", "32", "--target_tau=0.01"], capsys))
    assert changed == {**paper, "batch_size": 32, "target_tau": 0.01}


def test_without_config_it_shows_the_defaults_and_with_a_file_that_file(tmp_path: Path, capsys) -> None:
    for stage, cls in preset_stages().items():
        assert show([stage], capsys) == config_to_yaml(cls())
    own = tmp_path / "decoder.yaml"
    own.write_text("hidden_dim: 12\n")
    assert yaml.safe_load(show(["decoder", "--config", str(own)], capsys))["hidden_dim"] == 12
    paper = preset_file("paper", "bc")
    assert show(["bc", "--config", str(paper)], capsys) == config_to_yaml(parse_config(preset_stages()["bc"], paper, []))


BAD = [
    (["lam"], f"unknown stage 'lam' (stages: {', '.join(preset_stages())})"),
    (["bc", "--batch_sise", "3"], "unknown option --batch_sise (did you mean --batch_size"),
    (["bc", "--batch_size", "many"], "--batch_size many: expected an integer"),
    (["bc", "--batch_size", "0"], "--batch_size 0: expected an integer >= 1"),
    (["idm", "--config", "nopreset"], "--config nopreset: no preset nopreset/idm.yaml"),
    (["idm", "--config", "/nonexistent/idm.yaml"], "--config /nonexistent/idm.yaml: no such file"),
    (["lam-laom", "--config", "{lapo}"], "sets method 'lapo' but the stage is lam-laom"),
    (["lam-laom", "--method", "lapo"], "method 'lapo'"),
    (["decoder", "--config", "{empty}"], "no {empty}/decoder.yaml"),
    (["bc", "32"], "unexpected argument '32'"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], fragment: str, tmp_path: Path, capsys) -> None:
    fill = {"lapo": str(preset_file("cpu", "lam-lapo")), "empty": str(tmp_path)}
    one_line_error([a.format(**fill) for a in argv], capsys, fragment.format(**fill))


def test_a_users_folder_of_presets_is_read_by_train_and_show(tmp_path: Path, capsys) -> None:
    (tmp_path / "bc.yaml").write_text("epochs: 2.5\n")
    assert resolve_preset(str(tmp_path), "bc") == tmp_path / "bc.yaml"
    assert yaml.safe_load(show(["bc", "--config", str(tmp_path)], capsys))["epochs"] == 2.5
