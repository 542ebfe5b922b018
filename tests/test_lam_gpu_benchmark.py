"""benchmarks/lam_gpu.py on the CPU at its tiny shape: the prepared GPU run must work
the first time it meets a GPU, so every path short of CUDA is exercised here."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from laom.training.presets import PAPER_TRANSITIONS
from laom.training.synthetic import write_moving_square

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lam_gpu.py"
SMOKE = ["--device", "cpu", "--shape", "tiny", "--minutes", "0.05", "--warmup", "2"]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("lam_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def check_figures(result: dict, batch: int) -> None:
    assert result["samples_per_s"] > 0 and math.isfinite(result["samples_per_s"])
    assert result["step_s"] > 0
    assert result["epoch_s"] > 0 and math.isfinite(result["epoch_s"])
    assert result["epoch_transitions"] == PAPER_TRANSITIONS
    assert result["epoch_updates"] == math.ceil(PAPER_TRANSITIONS / batch)
    # the extrapolation is the measured step time over the epoch's updates
    assert result["epoch_s"] == pytest.approx(PAPER_TRANSITIONS / batch * result["step_s"])
    assert result["timed_updates"] >= 2 and result["updates"] >= result["timed_updates"]
    assert result["device"] == "cpu" and result["device_name"]
    assert result["torch"] == torch.__version__
    assert result["precision"] in ("float32", "bfloat16")
    assert result["batch_size"] == batch == result["config"]["batch_size"]
    cfg = result["config"]
    # the paper preset's fields, with the tiny shape's model on top
    assert cfg["learning_rate"] == 1e-4 and cfg["epochs"] == 10 and cfg["frame_stack"] == 3
    assert cfg["latent_dim"] == 32 and cfg["encoder_scale"] == 1
    assert result["peak_gpu_memory_gb"] is None


def test_synthetic_frames_speed_only(bench: ModuleType, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "lam.json"
    assert bench.main([*SMOKE, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    check_figures(result, 16)
    assert result["method"] == "laom" and result["shape"] == "tiny"
    assert result["data"].startswith("synthetic")
    assert result["probe"]["done"] is False and "--data" in result["probe"]["why_not"]
    assert result["probe"]["curve"] == []
    printed = capsys.readouterr().out
    assert "samples/s:" in printed and "epoch of 5,000,000 transitions" in printed
    assert "probe: skipped" in printed


def test_data_file_probe_curve(bench: ModuleType, tmp_path: Path, capsys) -> None:
    data = write_moving_square(tmp_path / "train.hdf5", trajectories=5, length=40)
    labeled = write_moving_square(tmp_path / "labeled.hdf5", trajectories=2, length=40, seed=1)
    out = tmp_path / "lam.json"
    argv = [*SMOKE, "--method", "laom-labels", "--batch-size", "8", "--data", str(data),
            "--labeled", str(labeled), "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    check_figures(result, 8)
    assert result["method"] == "laom-labels" and result["labeled"] == str(labeled)
    probe = result["probe"]
    assert probe["done"] is True and "held-out" in probe["test_set"]
    updates = [row["update"] for row in probe["curve"]]
    assert updates[0] == 0 and updates[-1] == result["updates"] and updates == sorted(set(updates))
    for row in probe["curve"]:
        assert row["action_probe_baseline_mse"] > 0 and math.isfinite(row["action_probe_mse"])
        assert row["samples"] == row["update"] * 8
    assert "probe curve:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--minutes", "0"], "--minutes"),
        (["--minutes", "nan"], "--minutes"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--method", "idm"], "--method"),
        (["--shape", "huge"], "--shape"),
        (["--labeled", "x.hdf5"], "--labeled"),
        (["--eval-data", "x.hdf5"], "--eval-data"),
        (["--data", "missing.hdf5"], "--data"),
        (["--device", "tpu"], "--device"),
        (["--probes", "0"], "--probes"),
    ],
)
def test_bad_input_is_one_line_before_any_work(
    bench: ModuleType, tmp_path: Path, capsys, argv: list[str], flag: str
) -> None:
    out = tmp_path / "lam.json"
    assert bench.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and flag in err[0]
    assert not out.exists()


def test_bad_input_from_the_stage_names_this_scripts_flag(
    bench: ModuleType, tmp_path: Path, capsys
) -> None:
    data = write_moving_square(tmp_path / "train.hdf5", trajectories=2, length=20)
    assert (
        bench.main(["--data", str(data), "--batch-size", "1000", "--out", str(tmp_path / "a.json")])
        == 2
    )
    assert capsys.readouterr().err.startswith("error: --batch-size 1000:")
    assert bench.main(["--out", str(tmp_path)]) == 2  # a folder
    assert capsys.readouterr().err.startswith("error: --out ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA on a machine without it")
def test_cuda_asked_without_cuda(bench: ModuleType, tmp_path: Path, capsys) -> None:
    assert bench.main(["--device", "cuda", "--out", str(tmp_path / "a.json")]) == 2
    assert capsys.readouterr().err.startswith("error: --device cuda:")
