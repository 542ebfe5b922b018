"""`laom relabel`: latent (and decoded) actions beside each trajectory, streamed and resumable,
and its refusals (one line, exit 2, nothing written or lost)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import laom.data.relabel as relabel_module
from laom.api import load_lam
from laom.cli import main
from laom.data.format import validate
from laom.data.relabel import DECODED_ACTIONS, LATENT_ACTIONS, relabel
from laom.models import LAOM, save_model
from laom.models.policy import ActingPolicy, ActionDecoder, PixelPolicy
from laom.models.saving import load_policy_file
from laom.training.synthetic import write_moving_square

HW, STACK, LATENT = 16, 2, 8


def save_tiny_lam(folder: Path, stack: int = STACK, hw: int = HW) -> Path:
    """An untrained LAOM saved as `laom train lam` saves one (seeded weights)."""
    torch.manual_seed(0)
    model = LAOM((3 * stack, hw, hw), LATENT, channels=(8, 8, 8), num_res_blocks=1, head_dim=16, head_blocks=1)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"method": "laom", "img_hw": hw, "frame_stack": stack, "action_dim": 2, "state_dim": 4,
            "latent_dim": model.latent_dim, "domain_name": "square", "task_name": "move"}  # fmt: skip
    save_model(folder / "lam.pt", model, meta)
    return folder


def save_tiny_decoder(folder: Path, stack: int = STACK, latent: int = LATENT) -> Path:
    """A decoder run's policy.pt: latent BC policy plus an action decoder."""
    torch.manual_seed(1)
    folder.mkdir(parents=True, exist_ok=True)
    policy = PixelPolicy((3 * stack, HW, HW), latent, channels=(8, 8, 8), num_res_blocks=1)
    decoder = ActionDecoder(latent, 2, 16, 1)
    meta = {"method": "laom", "img_hw": HW, "frame_stack": stack, "action_dim": 2, "latent_dim": latent,
            "domain_name": "square", "task_name": "move", "outputs": "action"}  # fmt: skip
    save_model(folder / "policy.pt", ActingPolicy(policy, decoder, meta), meta)
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("relabel")
    return {
        "data": write_moving_square(root / "data.hdf5", 3, 10, img_hw=HW, seed=0, distractor_records=True),
        "lam": save_tiny_lam(root / "lam"),
        "decoder": save_tiny_decoder(root / "decoder"),
    }


def test_latents_beside_each_trajectory(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.hdf5"
    res = relabel(inputs["lam"], inputs["data"], out, inputs["decoder"], progress=False, log=lambda _: None)
    assert (res.written, res.skipped, res.frames) == (3, 0, 30)
    model = load_lam(inputs["lam"])
    decoder = load_policy_file(inputs["decoder"] / "policy.pt").decoder
    validate(out)  # still a dataset in the release layout
    with h5py.File(inputs["data"], "r") as src, h5py.File(out, "r") as dst:
        for key, value in src.attrs.items():  # the data's attributes are kept
            assert np.array_equal(dst.attrs[key], value)
        assert dst.attrs["latent_dim"] == LATENT and dst.attrs["frame_stack"] == STACK
        for name in src:
            for field in ("obs", "states", "actions", "distractors/camera"):
                np.testing.assert_array_equal(dst[name][field][()], src[name][field][()])
            assert dst[name].attrs["traj_return"] == src[name].attrs["traj_return"]
            z = dst[name][LATENT_ACTIONS][()]
            assert z.shape == (9, LATENT) and z.dtype == np.float32
            np.testing.assert_allclose(z, model.encode(src[name]["obs"][()]), rtol=1e-5, atol=1e-6)
            with torch.no_grad():
                expected = decoder(torch.from_numpy(z)).numpy()
            np.testing.assert_allclose(dst[name][DECODED_ACTIONS][()], expected, rtol=1e-5, atol=1e-6)


def test_resumes_after_interruption(inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.hdf5"
    real = relabel_module._labels
    calls = {"n": 0, "cut": 1}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["cut"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(relabel_module, "_labels", interrupted)
    for cut, kept in ((1, []), (2, ["0"])):  # cut before the first trajectory, then after it
        calls.update(n=0, cut=cut)
        with pytest.raises(KeyboardInterrupt):
            relabel(inputs["lam"], inputs["data"], out, progress=False, log=lambda _: None)
        with h5py.File(out, "r") as f:
            assert sorted(f) == kept  # finished trajectories are kept, the cut one is absent
    monkeypatch.setattr(relabel_module, "_labels", real)
    lines: list[str] = []
    res = relabel(inputs["lam"], inputs["data"], out, progress=False, log=lines.append)
    assert (res.written, res.skipped) == (2, 1) and "1 already there" in lines[-1]
    fresh = tmp_path / "fresh.hdf5"
    relabel(inputs["lam"], inputs["data"], fresh, progress=False, log=lambda _: None)
    with h5py.File(out, "r") as a, h5py.File(fresh, "r") as b:
        assert sorted(a) == sorted(b) == ["0", "1", "2"]
        for name in a:
            np.testing.assert_array_equal(a[name][LATENT_ACTIONS][()], b[name][LATENT_ACTIONS][()])
    again = relabel(inputs["lam"], inputs["data"], out, progress=False, log=lines.append)
    assert again.written == 0 and "already relabelled" in lines[-1]


def test_relabelling_a_relabelled_file_drops_its_old_decoded_actions(inputs: dict[str, Path], tmp_path: Path) -> None:
    first = tmp_path / "first.hdf5"
    relabel(inputs["lam"], inputs["data"], first, inputs["decoder"], progress=False, log=lambda _: None)
    second = tmp_path / "second.hdf5"
    relabel(inputs["lam"], first, second, progress=False, log=lambda _: None)
    with h5py.File(second, "r") as f:
        assert LATENT_ACTIONS in f["0"] and DECODED_ACTIONS not in f["0"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def test_cli_prints_what_it_wrote(inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.hdf5"
    rc = main(["relabel", "--lam", str(inputs["lam"]), "--decoder", str(inputs["decoder"]),
               "--data", str(inputs["data"]), "--out", str(out), "--quiet"])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0 and "wrote 3 trajectories (30 frames)" in printed and "decoded_actions" in printed


def bad_cases(inputs: dict[str, Path], root: Path) -> list[tuple[list[str], str, Path | None]]:
    """(arguments, the flag the error names, an existing --out that must stay as it was)."""
    big = write_moving_square(root / "big.hdf5", 2, 6, img_hw=24, seed=0)
    stacked = root / "stacked.hdf5"
    with h5py.File(inputs["data"], "r") as src, h5py.File(stacked, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        g = dst.create_group("0")
        g.create_dataset("obs", data=np.concatenate([src["0"]["obs"][()]] * 3, axis=-1))
        for field in ("states", "actions"):
            g.create_dataset(field, data=src["0"][field][()])
        g.attrs["traj_return"] = 0.0
    other_lam = save_tiny_lam(root / "lam3", stack=3)
    decoder3 = save_tiny_decoder(root / "decoder3", stack=3)
    decoder4 = save_tiny_decoder(root / "decoder4", latent=4)
    foreign = root / "foreign.hdf5"
    foreign.write_bytes(Path(inputs["data"]).read_bytes())  # a dataset, not a relabel output
    done = root / "done.hdf5"
    relabel(inputs["lam"], inputs["data"], done, progress=False, log=lambda _: None)
    base = ["relabel", "--lam", str(inputs["lam"]), "--data", str(inputs["data"])]
    return [
        (["relabel", "--lam", str(inputs["lam"]), "--data", str(big), "--out", str(root / "a.hdf5")], "--data", None),
        (["relabel", "--lam", str(inputs["lam"]), "--data", str(stacked), "--out", str(root / "b.hdf5")], "--data", None),
        ([*base, "--decoder", str(decoder3), "--out", str(root / "c.hdf5")], "--decoder", None),
        ([*base, "--decoder", str(decoder4), "--out", str(root / "d.hdf5")], "--decoder", None),
        ([*base, "--decoder", str(inputs["lam"]), "--out", str(root / "e.hdf5")], "--decoder", None),
        ([*base, "--out", str(foreign)], "--out", foreign),
        (["relabel", "--lam", str(other_lam), "--data", str(inputs["data"]), "--out", str(done)], "--out", done),
        ([*base, "--decoder", str(inputs["decoder"]), "--out", str(done)], "--out", done),
        ([*base, "--out", str(inputs["data"])], "--out", Path(inputs["data"])),
        (["relabel", "--lam", str(root / "none"), "--data", str(inputs["data"]), "--out", str(root / "f.hdf5")], "--lam", None),
        ([*base, "--out", str(root / "no" / "g.hdf5")], "--out", None),
    ]


def test_bad_input_is_one_line_and_loses_nothing(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, flag, kept in bad_cases(inputs, tmp_path):
        before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        data_before = Path(inputs["data"]).read_bytes()
        rc, err = run_cli([*argv, "--quiet"], capsys)
        assert rc == 2, argv
        assert len(err.splitlines()) == 1 and err.startswith(f"laom: error: {flag} "), (argv, err)
        after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert after == before, (argv, "wrote or changed a file")
        assert Path(inputs["data"]).read_bytes() == data_before
        if kept is not None:
            assert kept.read_bytes() == before.get(kept, data_before)
