"""benchmarks/release_speed.py: bad --release input fails in one line before any work,
the torchvision stand-in keeps shapes, and (where a release checkout is at hand, in
LAOM_RELEASE or /tmp/laom-release) a tiny shape runs both sides end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "release_speed.py"
EXPECTED = "expected a checkout of github.com/dunnolab/laom"


def release_checkout() -> Path | None:
    for candidate in (os.environ.get("LAOM_RELEASE"), "/tmp/laom-release"):
        if candidate and all(
            (Path(candidate) / f).is_file() for f in ("train_lapo.py", "src/nn.py")
        ):
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("release_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


@pytest.mark.parametrize("kind", ["missing", "no_dir", "not_a_checkout"])
def test_bad_release_is_one_line_and_exit_2(
    bench: ModuleType, tmp_path: Path, kind: str, capsys
) -> None:
    (tmp_path / "train_lapo.py").write_text("")  # but no src/nn.py
    argv = {"missing": [], "no_dir": ["--release", str(tmp_path / "nope")],
            "not_a_checkout": ["--release", str(tmp_path)]}[kind]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("release_speed: error: --release DIR: ")
    assert lines[0].endswith(EXPECTED)
    if kind == "not_a_checkout":
        assert "src/nn.py" in lines[0] and "train_lapo.py" not in lines[0]


def test_torchvision_standin_keeps_shapes(bench: ModuleType) -> None:
    saved = {
        k: v for k, v in sys.modules.items() if k == "torchvision" or k.startswith("torchvision.")
    }
    try:
        bench.install_torchvision_standin()
        import torchvision.transforms as TF
        from torchvision.utils import make_grid

        x = torch.rand(5, 9, 64, 64)
        padded = TF.functional.pad(x, 17, padding_mode="edge")
        assert padded.shape == (5, 9, 98, 98)
        assert torch.equal(padded[..., 0, 0], x[..., 0, 0])  # edge = replicate
        assert torch.equal(TF.functional.center_crop(padded, output_size=(64, 64)), x)
        rot = TF.RandomRotation(
            degrees=90, interpolation=TF.InterpolationMode.BILINEAR, expand=False
        )
        assert rot(x).shape == x.shape
        assert torch.allclose(TF.RandomRotation(degrees=0)(x), x, atol=1e-5)  # angle 0: identity
        persp = TF.RandomPerspective(distortion_scale=0.5, p=1.0)
        assert persp(x).shape == x.shape
        assert torch.allclose(TF.RandomPerspective(distortion_scale=0.0, p=1.0)(x), x, atol=1e-4)
        assert make_grid([x[0, :3]] * 6, nrow=3, padding=1).dim() == 3
    finally:
        for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["--updates", "0"], "--updates 0"), (["--methods", "lapo,bc"], "--methods bc"),
     (["--bf16-updates", "0"], "--bf16-updates 0")],
)  # fmt: skip
def test_bad_flags_are_one_line(
    bench: ModuleType, tmp_path: Path, argv: list[str], flag: str, capsys
) -> None:
    (tmp_path / "src").mkdir()
    for f in ("train_lapo.py", "src/nn.py"):
        (tmp_path / f).write_text("")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--release", str(tmp_path), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"release_speed: error: {flag}") and err.count("\n") == 1, err


@pytest.mark.skipif(
    release_checkout() is None, reason="no release checkout (LAOM_RELEASE or /tmp/laom-release)"
)
def test_tiny_shape_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    cmd = [sys.executable, str(SCRIPT), "--release", str(release_checkout()), "--shape", "tiny",
           "--methods", "laom-labels", "--warmup", "1", "--updates", "2", "--repeats", "1",
           "--length", "30", "--labeled-batch", "8", "--threads", "1", "--release-fp32", "--bf16-updates", "1",
           "--json", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ours/bf16" in done.stdout and "ours/fp32" in done.stdout
    assert "labeled_batch_size" in done.stdout  # the field mapping is printed
    result = json.loads(out.read_text())
    assert result["shape"] == "tiny" and result["updates"] == 2
    (row,) = result["rows"]
    assert row["method"] == "laom-labels" and row["release_batch"] == row["ours_batch"] == 8
    for side in ("release", "release_fp32", "ours"):
        assert row["best"][side] > 0
    for side in ("release", "release_fp32"):  # the release's own throughput field agrees
        assert 0.5 < row["release_logged"][side] / row["best"][side] < 2
