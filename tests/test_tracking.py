"""wandb run names and ids, without network or the wandb package: the id is a function
of the run folder, so a resumed stage continues its wandb run."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from laom.training.baselines import BCBaselineConfig, IDMBCConfig, IDMConfig
from laom.training.bc import BCConfig
from laom.training.decoder import DecoderConfig
from laom.training.lam import CONFIGS
from laom.training.metrics import MetricsWriter
from laom.training.rundir import RunDir
from laom.training.tracking import method_of, stage_of, wandb_init_kwargs, wandb_run_id


def upstream(folder: Path, **config: str) -> str:
    """A run folder holding just the config.yaml a later stage reads its method from."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return str(folder)


def test_names_say_method_stage_and_folder(tmp_path: Path) -> None:
    lam = upstream(tmp_path / "root" / "lam-lapo-1234", method="lapo")
    bc = upstream(tmp_path / "root" / "bc-99", lam=lam)
    cases = [
        (CONFIGS["laom-labels"](), "lam", "laom-labels"),
        (CONFIGS["lapo"](), "lam", "lapo"),
        (BCConfig(lam=lam), "bc", "lapo"),
        (DecoderConfig(policy=bc), "decoder", "lapo"),
        (
            BCConfig(lam=str(tmp_path / "gone")),
            "bc",
            "latent",
        ),  # upstream not readable: still a name
        (IDMConfig(), "idm", "idm"),
        (IDMBCConfig(), "idm-bc", "idm"),
        (BCBaselineConfig(), "bc-baseline", "bc"),
    ]
    for cfg, stage, method in cases:
        assert (stage_of(cfg), method_of(cfg)) == (stage, method), type(cfg).__name__
    kw = wandb_init_kwargs(
        tmp_path / "root" / "decoder-77", DecoderConfig(policy=bc, wandb_project="mine")
    )
    assert kw["name"] == "lapo/decoder/decoder-77"
    assert kw["project"] == "mine" and kw["resume"] == "allow"
    assert not set(kw["id"]) & set("/\\#?%:") and kw["id"].startswith("decoder-")


def test_id_is_stable_per_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "runs" / "lam"
    # The same folder written relative or absolute is the same run; another folder is not.
    monkeypatch.chdir(tmp_path)
    assert wandb_run_id("runs/lam", "lam") == wandb_run_id(run, "lam")
    assert wandb_run_id(tmp_path / "runs" / "lam2", "lam") != wandb_run_id(run, "lam")
    assert wandb_run_id(run, "bc") != wandb_run_id(run, "lam")


class FakeRun:
    def __init__(self, **kwargs: object) -> None:
        self.kwargs, self.logged, self.finished = kwargs, [], False

    def log(self, row: dict, step: int) -> None:
        self.logged.append((step, row))

    def finish(self) -> None:
        self.finished = True


def test_metrics_writer_opens_the_same_wandb_run_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[FakeRun] = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: runs.append(FakeRun(**kw)) or runs[-1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = CONFIGS["laom"](wandb=True, wandb_project="p")
    run = RunDir(tmp_path / "lam-laom-abc")
    run.path.mkdir()
    for resume_from in (0, 50):  # a fresh start, then a resume from update 50
        writer = MetricsWriter(run, cfg, resume_from=resume_from)
        writer.write(resume_from + 10, {"loss": 0.5})
        writer.close()
    first, second = runs
    assert first.kwargs["id"] == second.kwargs["id"] and second.kwargs["resume"] == "allow"
    assert first.kwargs["name"] == "laom/lam/lam-laom-abc" and first.kwargs["project"] == "p"
    assert first.kwargs["config"]["method"] == "laom"
    assert second.logged == [(60, {"loss": 0.5})] and first.finished and second.finished


def test_read_jsonl_leaves_out_a_torn_last_line_only(tmp_path: Path) -> None:
    from laom.training.metrics import read_jsonl

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"update": 1}\n{"update": 2}\n{"upd')  # killed mid-write
    assert read_jsonl(path) == [{"update": 1}, {"update": 2}]
    path.write_text('{"update": 1}\n{"upd\n{"update": 3}\n')  # damaged in the middle
    with pytest.raises(ValueError):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "none.jsonl") == []
