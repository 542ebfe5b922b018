"""Config fields as options (laom/training/options.py): every field in --help with its
default, list values as typed, and every bad value refused in one line before any work."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from laom.cli import main
from laom.errors import LaomError
from laom.training import pipeline as pl
from laom.training.config import parse_config
from laom.training.lam import CONFIGS, LAMConfig, LAPOConfig, lam_config, train_lam
from laom.training.options import check_fields, kinds, show, spec_of
from laom.training.presets import preset_file
from laom.training.synthetic import write_moving_square

HW = 16
ALL_CONFIGS = pl.preset_stages()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_moving_square(tmp_path_factory.mktemp("checks") / "data.hdf5", 3, 20, img_hw=HW, seed=0)


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture, fragment: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("laom: error: ") and fragment in err, err
    return err


# --------------------------------------------------------------------------- bad values

BAD_LAM = [
    (["--epochs", "-1"], "--epochs -1: expected a number > 0"),
    (["--epochs", "0"], "--epochs 0: expected a number > 0"),
    (["--epochs", "nan"], "--epochs nan: expected a number > 0"),
    (["--total_updates", "-3"], "--total_updates -3: expected an integer >= 0"),
    (["--probe_ridge", "-1"], "--probe_ridge -1: expected a number > 0"),
    (["--holdout_fraction", "1.5"], "--holdout_fraction 1.5: expected a number > 0 and < 1"),
    (["--holdout_fraction", "0"], "--holdout_fraction 0: expected a number > 0 and < 1"),
    (["--learning_rate", "-1e-4"], "--learning_rate -0.0001: expected a number > 0"),
    (["--future_offset", "5000"], "--future_offset 5000: expected < 20, the longest trajectory"),
    (["--future_offset", "0"], "--future_offset 0: expected an integer >= 1"),
    (["--batch_size", "1.5"], "--batch_size 1.5: expected an integer"),
    (["--batch_size", "0"], "--batch_size 0: expected an integer >= 1"),
    (["--encoder_channels", "16,x,32"], "--encoder_channels 16,x,32: element 'x' is not an integer"),
    (["--encoder_channels", "16,0"], "--encoder_channels 16,0: expected a non-empty list of values >= 1"),
    (["--encoder_channels", "[]"], "--encoder_channels []: expected a non-empty list"),
    (["--use_aug", "maybe"], "--use_aug maybe: expected true or false"),
    (["--device", "gpu"], "--device gpu: expected auto, cpu, cuda or cuda:N"),
    (["--precision", "fp16"], "--precision fp16: expected one of auto, fp32, bf16"),
    (["--seed", "-1"], "--seed -1: expected an integer >= 0"),
    (["--grad_clip", "0"], "--grad_clip 0: expected a number > 0 or null"),
    (["--target_tau", "2"], "--target_tau 2: expected a number > 0 and <= 1"),
    (["--epochs", "1", "2"], "--epochs takes one value, got 2"),
    (["--epochs"], "--epochs needs a value"),
    (["--epoch", "2"], "unknown option --epoch (did you mean --epochs"),
    (["stray"], "unexpected argument 'stray'"),
]


@pytest.mark.parametrize(("flags", "fragment"), BAD_LAM, ids=[" ".join(f) for f, _ in BAD_LAM])
def test_train_lam_refuses_bad_values_before_any_work(flags, fragment, data, tmp_path, capsys):
    out = tmp_path / "run"
    one_line_error(["train", "lam", "--method", "laom", "--data", str(data), "--out", str(out), *flags], capsys, fragment)
    assert not out.exists()


BAD_STAGES = [
    (["train", "bc-baseline", "--data", "{data}", "--epochs", "-1"], "--epochs -1"),
    (["train", "bc-baseline", "--data", "{data}", "--curve_workers", "-2"], "--curve_workers -2: expected an integer >= 0"),
    (["train", "bc-baseline", "--data", "{data}", "--pooling", "max"], "--pooling max: expected one of mean, flatten"),
    (["train", "idm", "--labeled", "{data}", "--idm_learning_rate", "-1"], "--idm_learning_rate -1"),
    (["train", "idm", "--labeled", "{data}", "--idm_arch", "deep"], "--idm_arch deep"),
    (["train", "idm-bc", "--idm", "{tmp}", "--data", "{data}", "--label_batch_size", "0"], "--label_batch_size 0"),
    (["train", "bc", "--lam", "{tmp}", "--data", "{data}", "--cache_dtype", "int8"], "--cache_dtype int8"),
    (["train", "decoder", "--policy", "{tmp}", "--labeled", "{data}", "--total_updates", "0"], "--total_updates 0: expected an integer >= 1"),
    (["train", "decoder", "--policy", "{tmp}", "--labeled", "{data}", "--num_layers", "-1"], "--num_layers -1"),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD_STAGES, ids=[" ".join(a[1:2] + a[-2:]) for a, _ in BAD_STAGES])
def test_other_stages_refuse_bad_values(argv, fragment, data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [a.format(data=data, tmp=tmp_path) for a in argv]
    one_line_error([*argv, "--out", str(out)], capsys, fragment)
    assert not out.exists()


BAD_PIPELINE = [
    (["--epochs", "-1"], "--epochs -1"),
    (["--lam.probe_ridge", "-1"], "--probe_ridge -1"),
    (["--lam.future_offset", "5000"], "--future_offset 5000: expected < 20"),
    (["--decoder.total_updates", "-3"], "--total_updates -3"),
    (["--workers", "-2"], "--workers -2: expected >= 0"),
    (["--num-envs", "0"], "--num-envs 0: expected >= 1"),
    (["--lam.method", "lapo"], "method 'lapo' given to LAMConfig"),
]


@pytest.mark.parametrize(("flags", "fragment"), BAD_PIPELINE, ids=[" ".join(f) for f, _ in BAD_PIPELINE])
def test_pipeline_refuses_bad_values_before_the_first_stage(flags, fragment, data, tmp_path, capsys):
    out = tmp_path / "root"
    argv = ["pipeline", "--method", "laom", "--data", str(data), "--labeled", str(data), "--out", str(out),
            "--episodes", "0", *flags]  # fmt: skip
    one_line_error(argv, capsys, fragment)
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--workers", "-2"], ["--num-envs", "0"], ["--max-steps", "0"], ["--seed", "-1"]])
def test_evaluate_refuses_bad_counts_before_loading_the_policy(flags, tmp_path, capsys):
    one_line_error(["evaluate", "--policy", str(tmp_path / "nothing"), "--episodes", "1", *flags], capsys, " ".join(flags))


def test_data_info_refuses_a_file_of_another_layout(data, tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["weights"] = np.zeros(3)
    one_line_error(["data", "info", str(other)], capsys, "not a dataset in the release's layout")
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as f:
        f.attrs.update(domain_name="square", task_name="move")
        f.create_group("0")["obs"] = np.zeros((3, HW, HW, 3), np.uint8)
    one_line_error(["data", "info", str(partial)], capsys, "trajectory 0 has no dataset states, actions")
    assert main(["data", "info", str(data)]) == 0  # the right layout still reads


def test_python_api_is_checked_too(data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(LaomError, match="--holdout_fraction 1.5"):
        train_lam(LAMConfig(data=str(data), out=str(out), holdout_fraction=1.5))
    with pytest.raises(LaomError, match="--batch_size 2.5: expected an integer"):
        check_fields(LAMConfig(batch_size=2.5))  # type: ignore[arg-type]
    with pytest.raises(LaomError, match="--encoder_channels 16,32.5: expected"):
        check_fields(LAMConfig(encoder_channels=(16, 32.5)))  # type: ignore[arg-type]
    assert not out.exists()


# --------------------------------------------------------------------------- list values


@pytest.mark.parametrize("typed", [["16,32,64"], ["[16, 32, 64]"], ["16", "32", "64"], ["(16 32 64)"], ["16, 32,64"]])
def test_list_values_as_a_user_types_them(typed):
    cfg = parse_config(CONFIGS["laom"], None, ["--encoder_channels", *typed, "--epochs", "2"])
    assert cfg.encoder_channels == (16, 32, 64) and cfg.epochs == 2.0
    assert parse_config(CONFIGS["lapo"], None, ["--fsq_levels", "[]"]).fsq_levels == ()
    assert parse_config(CONFIGS["lapo"], None, [f"--fsq-levels={typed[0]}"] + typed[1:]).fsq_levels == (16, 32, 64)


def test_pipeline_passes_list_words_to_every_stage(data):
    stages = pl.chain("laom", str(data), str(data), "")
    routed = pl.split_overrides(["--encoder_channels", "8", "16", "--lam.latent_dim", "32", "--threads", "1"], stages, "laom")
    assert routed["lam"] == ["--encoder_channels", "8", "16", "--latent_dim", "32", "--threads", "1"]
    assert parse_config(CONFIGS["laom"], None, routed["lam"]).encoder_channels == (8, 16)
    assert parse_config(pl.stage_configs("bc")["bc"], None, routed["bc"]).encoder_channels == (8, 16)


def test_other_value_forms():
    cfg = parse_config(CONFIGS["laom"], None, ["--use_aug", "--grad_clip", "none", "--total_updates", "1e3", "--channels-last", "no"])
    assert cfg.use_aug is True and cfg.grad_clip is None and cfg.total_updates == 1000 and cfg.channels_last is False


# --------------------------------------------------------------------------- one declaration per field


@pytest.mark.parametrize("stage", sorted(ALL_CONFIGS))
def test_every_field_has_help_and_a_checked_type(stage):
    cls = ALL_CONFIGS[stage]
    for name in kinds(cls):
        assert spec_of(cls, name).help, f"{stage}.{name} has no help"
    check_fields(cls())


def test_a_field_means_the_same_in_every_stage():
    seen: dict[str, tuple] = {}
    for stage, cls in ALL_CONFIGS.items():
        for name in kinds(cls):
            spec = spec_of(cls, name)
            limits = (spec.ge, spec.gt, spec.le, spec.lt, spec.choices, spec.item_ge, spec.nonempty)
            if name == "total_updates" and stage == "decoder":  # the decoder counts updates only
                continue
            assert seen.setdefault(name, limits) == limits, f"{stage}.{name} has other limits"


@pytest.mark.parametrize("preset", ["cpu", "paper", "demo"])
def test_every_preset_is_in_range(preset):
    for stage, cls in ALL_CONFIGS.items():
        path = preset_file(preset, stage)
        if path is not None:
            parse_config(cls, path, [])  # check_fields runs inside


# --------------------------------------------------------------------------- one config class per method


def test_a_method_config_refuses_another_methods_name():
    with pytest.raises(LaomError, match="method 'lapo' given to LAMConfig.*LAPOConfig"):
        LAMConfig(method="lapo")
    with pytest.raises(LaomError, match="given to LAPOConfig"):
        LAPOConfig(method="laom")
    cfg = lam_config("lapo", epochs=2.0)
    assert isinstance(cfg, LAPOConfig) and cfg.fsq_levels == (2, 2, 4) and not cfg.use_aug and cfg.epochs == 2.0
    with pytest.raises(LaomError, match="method 'foo'"):
        lam_config("foo")


def test_train_lam_refuses_a_preset_of_another_method(data, tmp_path, capsys):
    preset = preset_file("cpu", "lam-lapo")
    one_line_error(["train", "lam", "--method", "laom", "--data", str(data), "--out", str(tmp_path / "r"),
                    "--config", str(preset)], capsys, "sets method 'lapo' but --method is 'laom'")  # fmt: skip


# --------------------------------------------------------------------------- --help


def help_text(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def expected_entry(variants: dict[str, type], prefix: str, name: str) -> tuple[str, str]:
    """(flag, "default: ...)") as the help shows them; per method where defaults differ."""
    defaults = {label: show(getattr(cls(), name)) for label, cls in variants.items()}
    if len(set(defaults.values())) == 1:
        shown = next(iter(defaults.values()))
    else:
        shown = ", ".join(f"{label} {value}" for label, value in defaults.items())
    return f"--{prefix}{name} ", f"default: {shown})"


HELP = [(["train", s], s, "") for s in pl.STAGE_NAMES] + [(["pipeline"], s, f"{s}.") for s in pl.STAGE_NAMES]


@pytest.mark.parametrize(("argv", "stage", "prefix"), HELP, ids=[f"{' '.join(a)}:{s}" for a, s, _ in HELP])
def test_help_lists_every_field_with_its_default(argv, stage, prefix, capsys):
    text = help_text([*argv, "--help"], capsys)
    text = text.split(f"{stage} config fields", 1)[1]
    variants = pl.stage_configs(stage)
    first = next(iter(variants.values()))
    for name in kinds(first):
        if name in pl.FILE_FIELDS:
            continue
        flag, default = expected_entry(variants, prefix, name)
        # from the flag to the first "default:" after it, which must be its own
        entry = re.search(re.escape(flag) + r"((?:(?!default:).)*)\(([^()]*; )?" + re.escape(default), text)
        assert entry, f"{flag}with {default} not in help of {' '.join(argv)}"
        assert spec_of(first, name).help.split()[0] in entry.group(1), flag


def test_method_before_help_shows_that_methods_defaults(capsys):
    text = help_text(["train", "lam", "--method", "lapo", "--help"], capsys)
    assert "--fsq_levels INT,INT,..." in text and "default: 2,2,4)" in text
    assert "default: lapo" not in text  # one method: no per-method list of defaults
    text = help_text(["pipeline", "--method", "idm", "--help"], capsys)
    assert "--idm.idm_updates" in text and "--idm-bc.epochs" in text and "--lam." not in text


def test_top_level_help_does_not_import_torch():
    code = "import sys; from laom.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- held-out corpus (scripts/bad_inputs.py)


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory: pytest.TempPathFactory, data: Path) -> dict[str, Path]:
    """Inputs a new user points commands at by mistake (scripts/bad_inputs.py builds the same)."""
    d = tmp_path_factory.mktemp("odd")
    text = d / "text.hdf5"
    text.write_text("not an HDF5 file\n")
    other = d / "other.hdf5"
    with h5py.File(other, "w") as f:
        f["weights"] = np.zeros(3)
    gray = d / "gray.hdf5"
    with h5py.File(gray, "w") as f:
        f.attrs.update(domain_name="square", task_name="move")
        g = f.create_group("0")
        g["obs"], g["actions"], g["states"] = np.zeros((5, HW, HW), np.uint8), np.zeros((5, 2)), np.zeros((5, 4))
    walker = write_moving_square(d / "walker.hdf5", 2, 20, img_hw=HW, seed=1, task=("walker", "walk"))
    notes = d / "notes.txt"
    notes.write_text("notes\n")
    one = write_moving_square(d / "one.hdf5", 1, 20, img_hw=HW, seed=2)
    return {"text": text, "other": other, "gray": gray, "walker": walker, "notes": notes, "one": one, "dir": d}


CORPUS = [  # (argv, fragments the error line must hold); each found by the corpus, refused before any work
    (["collect", "--task", "cheetah-run", "--episodes", "1", "--seed", "-1"], "--seed -1: expected an integer >= 0"),
    (["collect", "--task", "cheetah-run", "--episodes", "1", "--img-hw", "100000"], "--img-hw 100000: expected 16 to 1024"),
    (["collect", "--task", "", "--episodes", "1"], "--task '': expected 'domain-task'"),
    (["collect", "--task", "cheetah-run", "--episodes", "1", "--compression", "zip"], "--compression 'zip'"),
    (["collect", "--task", "cheetah-run", "--episodes", "1", "--backgrounds", "{dir}/davis"], "--backgrounds {dir}/davis: does not exist"),
    (["collect", "--task", "cheetah-run", "--episodes", "1", "--expert", "{dir}/none.npz"], "--expert {dir}/none.npz: does not exist"),
    (["collect", "--task", "cheetah-run", "--episodes", "1", "--out", "{text}"], "--out {text}: not an HDF5 file"),
    (["data", "sample-labeled", "{data}", "-n", "1", "--compression", "brotli"], "--compression 'brotli'"),
    (["data", "info", "{gray}"], "trajectory 0 obs must be uint8 [T,H,W,3]"),
    (["env", "preview", "cheetah-run", "--img-hw", "8"], "--img-hw 8: expected 16 to 1024"),
    (["env", "preview", "cheetah-run", "--camera-scale", "-1"], "--camera-scale -1.0: expected a number from 0 to 1"),
    (["env", "preview", "cheetah-run", "--steps", "10", "--frames", "50"], "--frames 50: a rollout of --steps 10 has only 11"),
    (["env", "bench", "cheetah-run", "--workers", "0"], "--workers 0: expected an integer >= 1"),
    (["expert", "train", "cheetah-run", "--steps", "10", "--lr", "-1"], "--lr -1.0: expected a number > 0"),
    (["expert", "train", "cheetah-run", "--steps", "10", "--net", "0"], "--net 0: expected hidden sizes >= 1"),
    (["expert", "eval", "builtin:cheetah-run", "--episodes", "0"], "--episodes 0: expected an integer >= 1"),
    (["train", "lam", "--method", "laom", "--data", "{text}"], "--data {text}: not an HDF5 file"),
    (["train", "lam", "--method", "laom", "--data", "{other}"], "--data {other}"),
    (["train", "lam", "--method", "laom", "--data", "{dir}"], "--data {dir}: is a directory"),
    (["train", "lam", "--method", "laom", "--data", "{data}", "--eval-data", "{walker}"], "--eval-data {walker} holds walker-walk"),
    (["train", "lam", "--method", "laom", "--data", "{data}", "--batch_size", "500"], "--batch_size 500: --data {data} has only 57"),
    (["train", "lam", "--method", "laom", "--data", "{data}", "--config", "{data}"], "config {data}: not a YAML file"),
    (["train", "bc-baseline", "--data", "{gray}"], "--data {gray}: trajectory 0 obs must be uint8"),
    (["pipeline", "--method", "idm", "--labeled", "{walker}", "--data", "{data}", "--episodes", "0"],
     "--labeled {walker} holds walker-walk data but --data {data}"),
    (["pipeline", "--method", "laom", "--data", "{data}", "--labeled", "{data}", "--episodes", "0", "--lam.batch_size", "100"],
     "--batch_size 100: --data {data} has only 57 transitions"),
    (["train", "lam", "--method", "laom", "--data", "{one}"], "--data {one}: one trajectory cannot be split"),
    (["train", "bc-baseline", "--data", "{data}", "--frame_stack", "500"], "--frame_stack 500: expected at most 20"),
    (["sweep", "--tasks", "square-move", "--methods", "bc", "--labeled", "2,,4", "--data", "{data}", "--episodes", "0"],
     "--labeled 2,,4: empty entry"),
    (["evaluate", "--policy", "{notes}"], "--policy {notes}: unreadable"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "fragment"), CORPUS, ids=[" ".join(a[:2] + a[-2:]) for a, _ in CORPUS])
def test_corpus_findings_are_refused_in_one_line(argv, fragment, data, odd_files, tmp_path, capsys):
    paths = {"data": data, **odd_files}
    argv = [a.format(**paths) for a in argv]
    if "--out" not in argv and argv[:2] != ["env", "bench"] and argv[0] not in ("data", "expert", "evaluate") or argv[:2] == ["expert", "train"]:
        argv += ["--out", str(tmp_path / ("out.png" if argv[0] == "env" else "out.hdf5" if argv[0] == "collect" else "out"))]
    if argv[:2] == ["data", "sample-labeled"]:
        argv += ["--out", str(tmp_path / "s.hdf5")]
    before = sorted(tmp_path.iterdir())
    one_line_error(argv, capsys, fragment.format(**paths))
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_demo_checks_its_collections_before_collecting(tmp_path, capsys, monkeypatch):
    from laom.experiments import demo

    def no_step(argv: list[str]) -> None:
        raise AssertionError(f"the demo ran a step: laom {' '.join(argv)}")

    monkeypatch.setattr(demo, "_run", no_step)
    out = tmp_path / "demo"
    for flags, fragment in ((["--img-hw", "0"], "--img-hw 0"), (["--workers", "-1"], "--workers -1"),
                            (["--difficulty", "nightmare"], "--difficulty 'nightmare'"),
                            (["--expert", str(tmp_path / "none.npz")], "--expert")):  # fmt: skip
        one_line_error(["demo", "--out", str(out), *flags], capsys, fragment)
    assert not out.exists()


def test_demo_refuses_a_disk_too_small_for_its_collections(tmp_path, capsys, monkeypatch):
    import shutil

    from laom.experiments import demo

    def no_step(argv: list[str]) -> None:
        raise AssertionError(f"the demo ran a step: laom {' '.join(argv)}")

    monkeypatch.setattr(demo, "_run", no_step)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    out = tmp_path / "demo"
    err = one_line_error(["demo", "--out", str(out)], capsys, f"--out {out}: its datasets need about")
    assert err.endswith("has 1.0 MiB free; free space or choose another --out")
    assert not out.exists()


def test_empty_path_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "info", ""])
    assert exit_info.value.code == 2 and "expected a path, got an empty string" in capsys.readouterr().err


def test_a_run_stopped_before_its_first_checkpoint_does_not_block_a_corrected_config(data, tmp_path):
    from laom.training.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.prepare(LAMConfig(data=str(data), out=str(run.path), epochs=1))
    run.prepare(LAMConfig(data=str(data), out=str(run.path), epochs=2))  # nothing to lose: replaced
    run.checkpoint_path.write_bytes(b"")  # now there is a run to resume
    with pytest.raises(LaomError, match="holds a run with a different config"):
        run.prepare(LAMConfig(data=str(data), out=str(run.path), epochs=3))


def test_a_run_folder_copied_elsewhere_is_the_same_run(data, tmp_path):
    """The study copies probe-only LAMs into the whole sweep's cache (same keys): the
    config.yaml there names the old folder as --out, which is where it was, not a setting."""
    import shutil

    from laom.training.rundir import RunDir

    run = RunDir(tmp_path / "a" / "run")
    run.prepare(LAMConfig(data=str(data), out=str(run.path), epochs=1))
    run.summary_path.write_text("{}")  # a finished run
    shutil.copytree(run.path, tmp_path / "b" / "run")
    copy = RunDir(tmp_path / "b" / "run")
    copy.prepare(LAMConfig(data=str(data), out=str(copy.path), epochs=1))  # no error
    with pytest.raises(LaomError, match="epochs"):  # a real setting still differs
        copy.prepare(LAMConfig(data=str(data), out=str(copy.path), epochs=2))


def _all_options() -> list[tuple[str, argparse.Action, argparse.ArgumentParser]]:
    from laom.cli import build_parser

    found: list[tuple[str, argparse.Action, argparse.ArgumentParser]] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child_name, child in action.choices.items():
                    walk(child, f"{name} {child_name}".strip())
            elif action.option_strings and action.help != argparse.SUPPRESS:
                found.append((name, action, parser))

    walk(build_parser(), "")
    return found


def test_every_option_of_every_command_has_help_and_shows_its_default() -> None:
    options = _all_options()
    assert len(options) > 100  # every command was reached
    no_help = [f"laom {cmd} {a.option_strings[-1]}" for cmd, a, _ in options if not a.help]
    assert no_help == []
    hidden = []
    for cmd, action, parser in options:
        if action.default is None or action.default is False or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = parser._get_formatter()._get_help_string(action) % {"default": action.default}
        if "default" not in text.lower():
            hidden.append(f"laom {cmd} {action.option_strings[-1]}")
    assert hidden == []


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["collect", "--task", "cheetah-run", "--episodes", "1", "--action-noise", "abc", "--out", "x.hdf5"],
         "argument --action-noise: invalid float value: 'abc'"),
        (["train", "lam", "--data", "x.hdf5"], "the following arguments are required: --method, --out"),
        ([], "the following arguments are required: COMMAND"),
    ],
)  # fmt: skip
def test_argparse_refusals_are_one_line(argv: list[str], fragment: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ": error: " in err and fragment in err, err
