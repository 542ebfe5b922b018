"""Distractor probes (issue 15, part 2): linear probes from latent actions to the change of
each recorded distractor, in the LAM stage's summary and probe curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from laom.data.sampler import load_frames
from laom.models.probe import (
    DISTRACTOR_FACTORS,
    change_probe_r2,
    distractor_changes,
    distractor_probe_r2,
)
from laom.training.config import parse_config
from laom.training.lam import CONFIGS, train_lam
from laom.training.summaries import LAMSummary
from laom.training.synthetic import write_moving_square

HW = 16
TINY = ["--batch_size", "8", "--latent_dim", "8", "--head_dim", "16", "--progress", "false", "--threads", "1",
        "--probe_samples", "200", "--probe_eval_samples", "200", "--precision", "fp32", "--total_updates", "2"]  # fmt: skip


def random_walks(rng: np.random.Generator, n: int, dims: int, scale: float = 1.0) -> np.ndarray:
    return np.cumsum(rng.normal(0, scale, (n, dims)), axis=0).astype(np.float32)


def test_changes_are_later_minus_earlier_per_factor() -> None:
    records = {
        "camera": np.arange(20, dtype=np.float32).reshape(5, 4),
        "background_frame": np.array([3, 4, 5, 4, 3], np.int32),
        "background_video": np.zeros(5, np.int32),  # never a factor: constant per episode
    }
    got = distractor_changes(records, np.array([0, 2, 3]), np.array([1, 2, 1]))
    assert set(got) == {"camera", "background"}  # no colour records, no colour factor
    np.testing.assert_array_equal(got["camera"], np.full((3, 4), 4.0) * [[1], [2], [1]])
    np.testing.assert_array_equal(got["background"], [[1], [-2], [-1]])
    assert distractor_changes(None, np.array([0])) is None
    assert distractor_changes({"other": np.zeros(5)}, np.array([0])) is None


def test_probes_find_what_the_features_hold_and_only_that() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    steps = np.arange(n - 1)
    records = {
        "camera": random_walks(rng, n, 4),
        "color": random_walks(rng, n, 6, 0.01),
        "background_frame": np.arange(n, dtype=np.int32),  # always +1: nothing to explain
    }
    changes = distractor_changes(records, steps)
    action = rng.normal(size=(n - 1, 2))
    mix = rng.normal(size=(4, 4))
    z = torch.from_numpy(np.concatenate([action, changes["camera"] @ mix, rng.normal(size=(n - 1, 3))], 1))
    fit, test = slice(0, 3000), slice(3000, None)
    r2 = distractor_probe_r2(z[fit], {k: v[fit] for k, v in changes.items()}, z[test],
                             {k: v[test] for k, v in changes.items()})  # fmt: skip
    assert set(r2) == set(DISTRACTOR_FACTORS)
    assert r2["camera"] > 0.99  # a linear mix of the camera motion is in z
    assert abs(r2["color"]) < 0.05  # colour drift is not
    assert r2["background"] is None  # a change that never varies is not scored
    no_camera = z[:, [0, 1, 6, 7, 8]]
    assert abs(change_probe_r2(no_camera[fit], changes["camera"][fit], no_camera[test], changes["camera"][test])) < 0.05
    assert distractor_probe_r2(z[fit], None, z[test], changes) is None


@pytest.mark.parametrize("features", [12, 300])  # primal and dual (more features than samples) systems
def test_one_solve_for_every_factor_gives_each_its_own_probe(features: int) -> None:
    """distractor_probe_r2 fits all factors in one solve; a ridge fit is separable across
    output columns, so each factor's R² is the one its own probe (change_probe_r2) gets."""
    rng = np.random.default_rng(3)
    n = 260
    changes = {"camera": rng.normal(size=(n, 4)) * [1, 10, 0.1, 0], "color": rng.normal(size=(n, 6)),
               "background": rng.normal(size=(n, 1))}  # fmt: skip
    z = torch.from_numpy(np.concatenate([changes["camera"][:, :2], rng.normal(size=(n, features - 2))], 1))
    fit, test = slice(0, 200), slice(200, None)
    joint = distractor_probe_r2(z[fit], {k: v[fit] for k, v in changes.items()}, z[test],
                                {k: v[test] for k, v in changes.items()}, ridge=1e-3)  # fmt: skip
    for factor, y in changes.items():
        alone = change_probe_r2(z[fit], y[fit], z[test], y[test], ridge=1e-3)
        assert joint[factor] == pytest.approx(alone, abs=1e-9), factor
    if features < 200:  # with more features than samples the probe interpolates noise
        assert joint["camera"] > 0.3 and abs(joint["color"]) < 0.5


def test_each_dimension_counts_alike_whatever_its_scale() -> None:
    """Zoom changes are far smaller than angle changes: unscaled, the angles alone would
    decide the R². Features holding one of two dimensions explain half."""
    rng = np.random.default_rng(1)
    y = np.stack([rng.normal(0, 100.0, 3000), rng.normal(0, 0.01, 3000)], 1)
    x = torch.from_numpy(np.stack([y[:, 0], rng.normal(size=3000)], 1))
    assert change_probe_r2(x[:2000], y[:2000], x[2000:], y[2000:]) == pytest.approx(0.5, abs=0.05)
    x_small = torch.from_numpy(np.stack([y[:, 1], rng.normal(size=3000)], 1))
    assert change_probe_r2(x_small[:2000], y[:2000], x_small[2000:], y[2000:]) == pytest.approx(0.5, abs=0.05)


# --------------------------------------------------------------------------- the LAM stage


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probedata")
    return {
        "records": write_moving_square(d / "rec.hdf5", 4, 24, img_hw=HW, seed=0, distractor_records=True),
        "eval_records": write_moving_square(d / "eval.hdf5", 2, 24, img_hw=HW, seed=2, split="eval",
                                            distractor_records=True),  # fmt: skip
        "plain": write_moving_square(d / "plain.hdf5", 4, 24, img_hw=HW, seed=0),
    }


def lam_summary(data: Path, out: Path, method: str = "lapo", **kw: str) -> LAMSummary:
    cfg = parse_config(CONFIGS[method], None, [*TINY, *(x for k, v in kw.items() for x in (f"--{k}", v))],
                       data=str(data), out=str(out))  # fmt: skip
    return train_lam(cfg)


def test_synthetic_records_are_the_background_pan(files: dict[str, Path]) -> None:
    data = load_frames(files["records"])
    assert set(data.distractors) == {"camera"}
    pan = distractor_changes(data.distractors, data.valid_steps)["camera"][:, :2] * HW
    # the texture moves by whole pixels, at most 4 per step and axis (its speed limit)
    assert np.allclose(pan, np.round(pan)) and np.abs(pan).max() <= 5 and np.abs(pan).mean() > 0.5


def test_lam_summary_reports_r2_per_factor_with_records(files: dict[str, Path], tmp_path: Path) -> None:
    summary = lam_summary(files["records"], tmp_path / "lam", probe_every="1")
    r2 = summary.distractor_probe_r2
    assert set(r2) == set(DISTRACTOR_FACTORS)
    assert isinstance(r2["camera"], float) and r2["camera"] <= 1.0
    assert r2["background"] is None and r2["color"] is None  # the synthetic task has no such records
    on_disk = json.loads((tmp_path / "lam" / "summary.json").read_text())
    assert on_disk["distractor_probe_r2"] == r2
    rows = [json.loads(x) for x in (tmp_path / "lam" / "probe_curve.jsonl").read_text().splitlines()]
    assert rows and all(isinstance(r["distractor_probe_r2"]["camera"], float) for r in rows)
    # the held-out file's records are used when the probe is scored on --eval-data
    held = lam_summary(files["records"], tmp_path / "lam-eval", eval_data=str(files["eval_records"]))
    assert isinstance(held.distractor_probe_r2["camera"], float)


def test_lam_summary_is_null_without_records(files: dict[str, Path], tmp_path: Path) -> None:
    summary = lam_summary(files["plain"], tmp_path / "lam")
    assert "distractor_probe_r2" in summary.to_json() and summary.distractor_probe_r2 is None
    assert summary.action_probe_mse is not None  # the other probes are unchanged
    # a test file without records: nothing to compare, so null too
    mixed = lam_summary(files["records"], tmp_path / "mixed", eval_data=str(files["plain"]))
    assert mixed.distractor_probe_r2 is None


# --------------------------------------------------------------------------- latent BC

TINY_BC = ["--batch_size", "16", "--total_updates", "2", "--encoder_channels", "[8,8,8]", "--threads", "1",
           "--progress", "false"]  # fmt: skip


@pytest.fixture(scope="module")
def lam_run(files: dict[str, Path], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lamrun") / "lam"
    lam_summary(files["records"], out)
    return out


def bc_summary(lam: Path, data: Path, out: Path, *extra: str) -> dict:
    from laom.cli import main

    assert main(["train", "bc", "--lam", str(lam), "--data", str(data), "--out", str(out), *TINY_BC, *extra]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("stream", [False, True])
def test_latent_bc_policy_is_probed_when_the_data_has_records(
    files: dict[str, Path], lam_run: Path, tmp_path: Path, stream: bool
) -> None:
    summary = bc_summary(lam_run, files["records"], tmp_path / "bc", *(["--stream", "true"] if stream else []))
    assert isinstance(summary["policy_action_probe_r2"], float)
    r2 = summary["policy_distractor_probe_r2"]
    assert set(r2) == set(DISTRACTOR_FACTORS) and isinstance(r2["camera"], float)
    assert r2["background"] is None and r2["color"] is None


def test_latent_bc_without_records_reports_null(files: dict[str, Path], lam_run: Path, tmp_path: Path) -> None:
    summary = bc_summary(lam_run, files["plain"], tmp_path / "bc")
    assert summary["policy_action_probe_r2"] is None and summary["policy_distractor_probe_r2"] is None
    assert summary["stage"] == "bc" and summary["updates"] == 2


# --------------------------------------------------------------------------- laom report


def stage_dir(root: Path, name: str, summary: dict) -> str:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return str(folder)


def sweep_with_probes(root: Path, records: bool) -> Path:
    """laom and lapo, 2 seeds, budgets 2 and 4 sharing each seed's LAM (as a sweep does)."""
    runs = []
    for seed in range(2):
        for method, camera in (("laom", 0.1 + 0.1 * seed), ("lapo", 0.8)):
            lam = {"action_probe_r2": 0.5 + 0.1 * seed if method == "laom" else 0.2,
                   "distractor_probe_r2": {"camera": camera, "background": None, "color": 0.05} if records else None}  # fmt: skip
            lam_dir = stage_dir(root / "cache", f"lam-{method}-{seed}", lam)
            for n in (2, 4):
                bc = {"policy_action_probe_r2": 0.3, "policy_distractor_probe_r2": {"camera": 0.2, "background": None,
                                                                                     "color": 0.0}} if records else {}  # fmt: skip
                bc_dir = stage_dir(root / "cache", f"bc-{method}-{seed}-{n}", bc)
                runs.append({"task": "cheetah-run", "method": method, "labeled": n, "seed": seed, "return_mean": 1.0,
                             "return_std": 0.0, "action_probe_mse": 1.0, "action_probe_baseline_mse": 2.0,
                             "stages": {"lam": {"dir": lam_dir}, "bc": {"dir": bc_dir}}})  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    return root


def test_report_draws_what_the_latents_encode(tmp_path: Path) -> None:
    from laom.cli import main

    sweep = sweep_with_probes(tmp_path / "sweep", records=True)
    out = tmp_path / "report"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    assert (out / "encodes.png").is_file() and (out / "encodes.png").stat().st_size > 0
    agg = json.loads((out / "summary.json").read_text())
    laom = agg["encodes"]["laom"]["latent"]
    assert laom["n"] == 2  # one value per LAM, not per run (each LAM serves two budgets)
    assert laom["camera"]["mean"] == pytest.approx(0.15) and laom["camera"]["std"] == pytest.approx(0.05)
    assert laom["action"]["mean"] == pytest.approx(0.55)  # the LAM summary's own action R²
    assert laom["background"] is None
    assert agg["encodes"]["lapo"]["policy"]["n"] == 4 and agg["encodes"]["lapo"]["policy"]["action"]["mean"] == 0.3
    md = (out / "results.md").read_text()
    section = md.split("## What the latents encode (linear-probe R²)\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| LAOM | LAM")]
    assert rows == ["| LAOM | LAM latents z(o_t, o_t+1) | 0.550 ± 0.050 | 0.150 ± 0.050 | – | 0.050 ± 0.000 | 2 |"]


def test_report_without_records_draws_no_encodes_chart(tmp_path: Path) -> None:
    from laom.experiments.report import write_report

    sweep = sweep_with_probes(tmp_path / "sweep", records=False)
    agg = write_report(str(sweep), tmp_path / "report")
    assert agg["encodes"] == {}
    assert not (tmp_path / "report" / "encodes.png").exists()
    assert "What the latents encode" not in (tmp_path / "report" / "results.md").read_text()
