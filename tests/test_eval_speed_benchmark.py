"""benchmarks/eval_speed.py end to end at a tiny size, and its bad-input line."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "eval_speed.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--num-envs", "0"], "--num-envs 0"),
        (["--steps", "3"], "--steps 3"),
        (["--task", "cheetah-fly"], "cheetah-fly"),
    ],
)
def test_bad_flags_are_one_line(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load().main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eval_speed: error:") and flag in err and "\n" not in err


def test_tiny_run_prints_rates_and_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert load().main(["--preset", "demo", "--steps", "12", "--num-envs", "2"]) == 0
    out = capsys.readouterr().out
    figures = {}
    for line in out.splitlines():
        if line.startswith("episodes/s"):
            for part in line.split(":", 1)[1].split(","):
                name, value = part.rsplit(" ", 1)
                figures[name.strip()] = float(value)
    assert set(figures) == {"evaluate()", "bound", "release design"}, out
    assert all(v > 0 for v in figures.values())
    assert "% of it" in out and "policy forward at batch 2" in out
