"""Typed records (laom.records): the stage summaries, runs.jsonl lines and model metadata
round-trip through their dataclasses unchanged.

tests/fixtures/records-ac20019 holds the files laom wrote at commit ac20019, before the
records were typed (made by tests/fixtures/make_records_by_main.py): each must load and
write back byte for byte, so runs made then still load and a runs.jsonl rewritten now
keeps its layout.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from laom.errors import LaomError
from laom.experiments.runs_store import RunRecord, append_run, read_runs
from laom.models.meta import LAMMeta, PolicyMeta
from laom.records import Record
from laom.training.rundir import RunDir
from laom.training.summaries import (
    BCBaselineSummary,
    DecoderSummary,
    FitSummary,
    IDMBCSummary,
    LAMSummary,
    LatentBCSummary,
    OfflineScores,
    StageRef,
)

FIXTURE = Path(__file__).parent / "fixtures" / "records-ac20019"
# model files of the formats before the one save format (tests/test_saving.py)
MODELS_8D8B0C8 = Path(__file__).parent / "fixtures" / "main-8d8b0c8"
SUMMARIES = {
    "lam-lapo.json": LAMSummary, "lam-laom-labels.json": LAMSummary, "bc.json": LatentBCSummary,
    # the one-stage IDM baseline's summary has the layout of today's idm-bc stage
    "decoder.json": DecoderSummary, "bc-baseline.json": BCBaselineSummary, "idm.json": IDMBCSummary,
    "idm-idm.json": FitSummary, "idm-bc.json": FitSummary,
}  # fmt: skip


def written(record: Record) -> str:
    """The text RunDir.write_summary writes for a summary."""
    return json.dumps(record.to_json(), indent=2, sort_keys=False) + "\n"


@pytest.mark.parametrize("name", sorted(SUMMARIES))
def test_summaries_written_before_the_records_load_and_write_back_unchanged(name: str) -> None:
    text = (FIXTURE / name).read_text()
    summary = SUMMARIES[name].from_json(json.loads(text))
    assert written(summary) == text
    assert summary.extra == {}  # every key of today's files is a named field


def test_summary_fields_read_as_their_types() -> None:
    lam = LAMSummary.from_json(json.loads((FIXTURE / "lam-laom-labels.json").read_text()))
    assert lam.method == "laom-labels" and lam.updates > 0 and lam.final["loss"] > 0
    assert lam.action_r2 == pytest.approx(lam.action_probe_r2)
    idm = IDMBCSummary.from_json(json.loads((FIXTURE / "idm.json").read_text()))
    assert isinstance(idm.offline, OfflineScores) and idm.offline.idm_action_mse is not None
    assert idm.stage == "idm" and idm.policy.endswith("/policy.pt")  # the one stage it was
    bc = BCBaselineSummary.from_json(json.loads((FIXTURE / "bc-baseline.json").read_text()))
    assert bc.offline is not None and bc.offline.idm_action_mse is None
    assert "idm_action_mse" not in bc.to_json()["offline"]  # only the IDM baseline's has it
    inner = FitSummary.from_json(json.loads((FIXTURE / "idm-idm.json").read_text()))
    assert inner.stage == "idm" and idm.idm_final_loss == inner.final_loss


def test_runs_written_before_the_records_load_and_write_back_unchanged() -> None:
    lines = (FIXTURE / "runs.jsonl").read_text().splitlines()
    runs = read_runs(FIXTURE / "runs.jsonl")
    assert len(runs) == len(lines) == 5
    for line, run in zip(lines, runs, strict=True):
        assert json.dumps(run.to_json(), sort_keys=False) == line
        assert run.extra == {} and all(isinstance(s, StageRef) for s in run.stages.values())
    lapo = next(r for r in runs if r.method == "lapo")
    assert (
        lapo.labeled == 2
        and lapo.stage_dir("lam") == lapo.stages["lam"].dir
        and lapo.stage_dir("idm") is None
    )
    assert isinstance(lapo.offline, OfflineScores) and lapo.normalized_return is not None


def test_unknown_keys_are_kept_and_missing_ones_read_as_none(tmp_path: Path) -> None:
    """A line of an older laom (fewer keys) loads with None for what it lacks; one of a
    newer laom keeps what this one does not name, written back after the named fields."""
    old = {"task": "t-a", "method": "bc", "labeled": 2, "seed": 0, "return_mean": 1.0}
    run = RunRecord.from_json(old)
    assert run.return_std is None and run.stages == {} and run.normalizer is None
    assert run.to_json() == old  # written back with the keys it had
    run.normalizer = 2.0
    assert run.to_json() == {**old, "normalizer": 2.0}  # ... and one once it is set
    newer = {
        **json.loads((FIXTURE / "runs.jsonl").read_text().splitlines()[0]),
        "future_figure": {"x": 1},
    }
    newer["stages"] = {k: {**v, "future": True} for k, v in newer["stages"].items()}
    run = RunRecord.from_json(newer)
    assert run.extra == {"future_figure": {"x": 1}}
    assert all(s.extra == {"future": True} for s in run.stages.values())
    assert run.to_json() == newer and list(run.to_json())[-1] == "future_figure"
    path = tmp_path / "runs.jsonl"
    append_run(path, run)
    (back,) = read_runs(path)
    assert back == run
    lam = LAMSummary.from_json(
        {"method": "lapo", "action_probe_mse": 0.5, "action_probe_baseline_mse": 2.0}
    )
    # a summary of a laom before the R² was kept: it is computed from the MSEs
    assert lam.action_probe_r2 is None and lam.action_r2 == pytest.approx(0.75)


def test_what_is_no_record_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(LaomError, match="no seed"):
        RunRecord.from_json({"task": "t-a", "method": "bc"})
    with pytest.raises(LaomError, match="expected a JSON object"):
        LAMSummary.from_json([1, 2])  # type: ignore[arg-type]
    path = tmp_path / "runs.jsonl"
    path.write_text('{"task": "t-a", "method": "bc", "seed": 0, "offline": 3}\n')
    with pytest.raises(LaomError, match=r"runs.jsonl:1: expected a JSON object for OfflineScores"):
        read_runs(path)


def test_a_stage_summary_round_trips_through_its_run_folder(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    summary = DecoderSummary(
        method="lapo", updates=3, final_loss=0.5, policy=str(run.path / "policy.pt")
    )
    run.write_summary(summary)
    assert summary.laom_version is not None  # stamped in place, as the file is
    back = run.read_summary(DecoderSummary)
    assert back == summary and "offline" not in json.loads(run.summary_path.read_text())
    with_offline = dataclasses.replace(summary, offline=OfflineScores(0.1, 0.2, 10))
    assert DecoderSummary.from_json(with_offline.to_json()) == with_offline
    assert list(with_offline.to_json())[-6:] == [
        "offline",
        "laom_version",
        "git_commit",
        "git_dirty",
        "machine",
        "peak_memory_gb",
    ]
    assert back.machine == summary.machine and "cores" in summary.machine
    # the writing process's peak memory (this test process's, as RunDir.prepare was not called)
    assert summary.peak_memory_gb is not None and summary.peak_memory_gb > 0
    assert "peak_memory_gb" not in DecoderSummary(method="lapo").to_json()  # omitted while unknown


# --------------------------------------------------------------------------- model metadata

METAS = {
    "meta-lam.json": LAMMeta, "meta-latent-policy.json": PolicyMeta, "meta-decoder.json": PolicyMeta,
    "meta-bc-baseline.json": PolicyMeta, "meta-idm.json": PolicyMeta, "meta-idm-idm.json": PolicyMeta,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(METAS))
def test_model_metas_written_before_the_records_load_and_write_back_unchanged(name: str) -> None:
    meta = json.loads((FIXTURE / name).read_text())
    record = METAS[name].from_json(meta)
    assert json.dumps(record.to_json()) == json.dumps(meta) and record.extra == {}


def test_metas_of_the_earlier_formats_keep_their_keys() -> None:
    """A policy saved before the one model format (its meta has state_dim, and no
    environment settings) loads with what it has; the decoder's meta made from it is its
    meta plus what the decoder adds, not this laom's full set of keys."""
    import torch

    from laom.models.saving import load_lam, load_policy_file

    for file in ("bc/latent_policy.pt", "decoder/policy.pt", "idm/policy.pt"):
        stored = torch.load(MODELS_8D8B0C8 / file, weights_only=False)["meta"]
        assert json.dumps(load_policy_file(MODELS_8D8B0C8 / file).meta.to_json()) == json.dumps(
            stored
        )
    latent = load_policy_file(MODELS_8D8B0C8 / "bc" / "latent_policy.pt").meta
    assert latent.state_dim == 5 and latent.difficulty is None and latent.labeled is None
    acting = latent.replaced(outputs="action", labeled="/data/labeled.h5")
    assert acting.to_json() == {
        **latent.to_json(),
        "outputs": "action",
        "labeled": "/data/labeled.h5",
    }
    assert latent.outputs == "latent"  # a copy: the latent policy's own meta is left alone
    _, lam_meta = load_lam(MODELS_8D8B0C8 / "lam-laom")
    assert (
        lam_meta.method == "laom"
        and lam_meta.updates is None
        and "updates" not in lam_meta.to_json()
    )


def test_a_fresh_policy_meta_has_todays_keys() -> None:
    """What the stages write: no state_dim, latent_dim or labeled unless set."""
    baseline = PolicyMeta(img_hw=16, frame_stack=2, action_dim=6, domain_name="walker", task_name="stand",
                          difficulty="vanilla", dynamic=False, split="train", backgrounds="procedural",
                          method="bc", outputs="action", data="/d.h5")  # fmt: skip
    assert json.dumps(baseline.to_json()) == json.dumps(
        {
            k: v
            for k, v in json.loads((FIXTURE / "meta-bc-baseline.json").read_text()).items()
            if k != "data"
        }
        | {"data": "/d.h5"}
    )
