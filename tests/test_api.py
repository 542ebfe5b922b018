"""The Python API: ``laom.load_lam(...).encode(frames)``, ``laom.run_pipeline``, the lazy
public names, and README's API example (run as written there)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import laom
from laom.api import LatentActionModel, override_args
from laom.data.sampler import load_frames
from laom.errors import LaomError
from laom.models import LAOM, LAPO, save_model
from laom.models.device import Runtime
from laom.training.lam import encode_transitions
from laom.training.synthetic import write_moving_square

HW, STACK = 16, 2
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_moving_square(
        tmp_path_factory.mktemp("api") / "data.hdf5", 3, 12, img_hw=HW, seed=0
    )


def saved_lam(folder: Path, method: str) -> Path:
    """A small untrained LAM saved as ``laom train lam`` saves one (weights are random but
    fixed by the seed, which is all a comparison of input preparation needs)."""
    torch.manual_seed(0)
    obs_shape = (3 * STACK, HW, HW)
    if method == "lapo":
        model = LAPO(obs_shape, 6, (2, 3), channels=(8, 8, 8), num_res_blocks=1)
    else:
        model = LAOM(obs_shape, 8, channels=(8, 8, 8), num_res_blocks=1, head_dim=16, head_blocks=1)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"method": method, "img_hw": HW, "frame_stack": STACK, "action_dim": 2, "state_dim": 4,
            "latent_dim": model.latent_dim, "domain_name": "square", "task_name": "move"}  # fmt: skip
    save_model(folder / "lam.pt", model, meta)
    return folder


def trajectory(path: Path, i: int) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[str(i)]["obs"][()]


@pytest.mark.parametrize("method", ["laom", "lapo"])
def test_encode_is_the_training_input_preparation(
    method: str, data_file: Path, tmp_path: Path
) -> None:
    lam = laom.load_lam(saved_lam(tmp_path / "run", method))
    assert isinstance(lam, LatentActionModel) and lam.method == method and lam.frame_stack == STACK
    frames = trajectory(data_file, 1)
    z = lam.encode(frames)
    assert z.dtype == np.float32 and z.shape == (len(frames) - 1, lam.latent_dim)

    # The LAM stage's own probe pass over the same trajectory gives the same latents.
    data = load_frames(data_file).subset([1])
    probe = encode_transitions(lam.module, data, STACK, 10**6, Runtime(torch.device("cpu"), None))
    np.testing.assert_allclose(z, probe["latent"].numpy(), rtol=1e-5, atol=1e-6)

    # And by hand: stacks of the last 2 frames (the first padded with itself), HWC -> CHW,
    # [0, 255] -> [-1, 1], z[t] from the stacks at t and t+1.
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    stacks = torch.cat([x[[max(t - 1, 0) for t in range(len(x))]], x], dim=1)
    with torch.no_grad():
        expected = lam.module.latent_action(stacks[:-1], stacks[1:]).numpy()
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)


def test_encode_batches_and_lists(data_file: Path, tmp_path: Path) -> None:
    lam = LatentActionModel.load(saved_lam(tmp_path / "run", "laom") / "lam.pt")
    a, b = trajectory(data_file, 0), trajectory(data_file, 2)
    one = [lam.encode(a), lam.encode(b)]
    batch = lam.encode(
        np.stack([a, b])
    )  # [B, T, H, W, 3]: no stack reaches into the other trajectory
    assert batch.shape == (2, len(a) - 1, lam.latent_dim)
    np.testing.assert_allclose(batch, np.stack(one), atol=1e-6)
    ragged = lam.encode([a, b[:5]])  # trajectories of different lengths
    assert [r.shape[0] for r in ragged] == [len(a) - 1, 4]
    np.testing.assert_allclose(ragged[1], one[1][:4], atol=1e-6)
    np.testing.assert_allclose(
        lam.encode(a, batch_size=3), one[0], atol=1e-6
    )  # chunking changes nothing


def test_encode_and_load_refuse_bad_input(data_file: Path, tmp_path: Path) -> None:
    lam = laom.load_lam(saved_lam(tmp_path / "run", "laom"))
    frames = trajectory(data_file, 0)
    cases = [
        (frames.astype(np.float32), "expected uint8 frames"),
        (frames[:, :8], r"expected shape \[T, 16, 16, 3\]"),
        (frames.transpose(0, 3, 1, 2), r"got \[12, 3, 16, 16\]"),
        (frames[:1], "a transition needs at least 2"),
        ([frames, frames[:1]], r"frames\[1\]: 1 frame"),
        ([], "at least one trajectory"),
    ]
    for bad, message in cases:
        with pytest.raises(LaomError, match=message):
            lam.encode(bad)
    with pytest.raises(LaomError, match="batch_size 0"):
        lam.encode(frames, batch_size=0)
    with pytest.raises(LaomError, match="no such file"):
        laom.load_lam(tmp_path / "nothing")
    with pytest.raises(LaomError, match="expected auto, cpu, cuda or cuda:N"):
        laom.load_lam(tmp_path / "run", device="gpu0")


def test_public_names_are_lazy_and_documented() -> None:
    # `import laom` (and so `laom --help`) must not pay for torch.
    code = "import sys, laom; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
    assert sorted(dir(laom)) == sorted(laom.__all__)
    for name in laom.__all__:
        value = getattr(laom, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"laom.{name} has no docstring"
    with pytest.raises(AttributeError):
        _ = laom.not_a_name


def test_override_args() -> None:
    got = override_args({"lam.latent_dim": 16, "threads": 1, "encoder_channels": [8, 8, 8], "compile": False,
                         "grad_clip": None, "bc.epochs": 0.5})  # fmt: skip
    assert got == ["--lam.latent_dim", "16", "--threads", "1", "--encoder_channels", "[8,8,8]", "--compile", "false",
                   "--grad_clip", "null", "--bc.epochs", "0.5"]  # fmt: skip
    assert override_args(["--threads", "2"]) == ["--threads", "2"]
    assert override_args(None) == []
    with pytest.raises(LaomError, match="not a field name"):
        override_args({"--threads": 1})
    with pytest.raises(LaomError, match="got a string"):
        override_args("--threads 1")


def test_run_pipeline_refuses_bad_input_before_work(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "root"
    with pytest.raises(LaomError, match="--method foo"):
        laom.run_pipeline("foo", data_file, data_file, out, log=None)
    with pytest.raises(LaomError, match="out: "):
        laom.run_pipeline("bc", data_file, data_file, "", log=None)
    with pytest.raises(LaomError, match="unknown option --bogus"):
        laom.run_pipeline(
            "laom", data_file, data_file, out, episodes=0, overrides={"lam.bogus": 1}, log=None
        )
    assert not any(out.glob("*-*"))  # no stage folder was made


def readme_api_example() -> str:
    """The first ```python block of README's "Python API" section."""
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)
    assert len(section) == 2, "README has no '## Python API' section"
    body = section[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, "README's Python API section has no python code block"
    return match.group(1)


def test_readme_api_example_compiles() -> None:
    code = readme_api_example()
    compile(code, "README.md", "exec")
    assert "laom.run_pipeline(" in code and ".encode(" in code


@pytest.mark.integration
def test_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes its files and runs where it is run
    scope: dict = {"__name__": "readme_example"}
    exec(compile(readme_api_example(), "README.md", "exec"), scope)
    summary, lam, frames, z = scope["summary"], scope["lam"], scope["frames"], scope["z"]
    assert Path(summary["summary_file"]).is_file() and set(summary["stages"]) == {
        "lam",
        "bc",
        "decoder",
    }
    assert summary["action_probe_mse"] is not None
    assert (
        lam.method == "laom"
        and Path(summary["stages"]["lam"]["dir"]).resolve().parent
        == (tmp_path / "runs" / "api").resolve()
    )
    assert frames.dtype == np.uint8 and z.shape == (len(frames) - 1, lam.latent_dim)
