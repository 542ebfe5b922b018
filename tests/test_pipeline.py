"""``laom pipeline``: stage keys, reuse of finished stages, resume of interrupted ones."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import h5py
import pytest
import yaml
from test_stages import cheetah, square

from laom.cli import main
from laom.errors import LaomError
from laom.training import pipeline as pl
from laom.training.config import parse_config

TINY = [
    "--threads", "1", "--encoder_channels", "[8,8,8]", "--batch_size", "16", "--epochs", "1", "--frame_stack", "2",
    "--lam.latent_dim", "16", "--lam.head_dim", "32", "--lam.head_blocks", "1", "--lam.probe_samples", "100",
    "--lam.probe_eval_samples", "100", "--decoder.total_updates", "20", "--decoder.hidden_dim", "32",
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pipeline")
    return {
        "data": square(d / "data.h5", 4, 30, seed=0),
        "labeled": square(d / "labeled.h5", 2, 20, seed=1),
        "labeled_b": square(d / "labeled_b.h5", 3, 20, seed=2),
    }


def keys(method: str, files: dict[str, Path], labeled: str = "labeled", extra: list[str] | None = None) -> dict[str, str]:
    stages = pl.chain(method, str(files["data"]), str(files[labeled]), "")
    overrides = pl.split_overrides([*TINY, *(extra or [])], stages, method)
    return {p.stage.name: p.key for p in pl.plan_chain(stages, Path("/nonexistent"), "cpu", overrides)}


def pipeline(root: Path, method: str, files: dict[str, Path], labeled: str = "labeled", *extra: str) -> list[str]:
    args = ["pipeline", "--method", method, "--data", str(files["data"]), "--labeled", str(files[labeled]),
            "--out", str(root), "--episodes", "0", "--no-progress", *TINY, *extra]  # fmt: skip
    return args


def summary_of(capsys: pytest.CaptureFixture) -> tuple[dict, str]:
    out = capsys.readouterr().out
    path = out.strip().splitlines()[-1].removeprefix("summary: ")
    return json.loads(Path(path).read_text()), out


def test_keys_depend_on_what_the_stage_reads(files: dict[str, Path]) -> None:
    base = keys("laom", files)
    assert list(base) == ["lam", "bc", "decoder"]
    # Only the decoder reads the labelled file of lapo/laom ...
    other = keys("laom", files, "labeled_b")
    assert other["lam"] == base["lam"] and other["bc"] == base["bc"] and other["decoder"] != base["decoder"]
    # ... while LAOM+supervision's LAM does, so the whole chain changes.
    sup, sup_b = keys("laom-labels", files), keys("laom-labels", files, "labeled_b")
    assert all(sup[k] != sup_b[k] for k in sup)
    # A LAM setting changes everything downstream; speed/logging settings change nothing.
    changed = keys("laom", files, extra=["--lam.latent_dim", "32"])
    assert all(changed[k] != base[k] for k in base)
    assert keys("laom", files, extra=["--threads", "2", "--log_every", "7", "--device", "cpu"]) == base
    assert keys("laom", files, extra=["--bc.learning_rate", "1e-3"])["lam"] == base["lam"]
    # A dataset is named by its content: written again alike (a new mtime) it is the same
    # input, while one changed action is a new one.
    st = files["data"].stat()
    os.utime(files["data"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert keys("laom", files) == base
    with h5py.File(files["data"], "r+") as f:
        original = f["0/actions"][0, 0]
        f["0/actions"][0, 0] = original + 0.5
    try:
        assert keys("laom", files)["lam"] != base["lam"]
    finally:
        with h5py.File(files["data"], "r+") as f:
            f["0/actions"][0, 0] = original
    assert keys("laom", files) == base


def test_lapo_labels_chain_reads_the_labels_in_its_lam(files: dict[str, Path]) -> None:
    """LAPO+supervision chains as LAOM+supervision does: its LAM reads --labeled, so every
    stage is per labelled budget, and the LAM is LAPO's preset with the labelled fields."""
    sup, sup_b = keys("lapo-labels", files), keys("lapo-labels", files, "labeled_b")
    assert list(sup) == ["lam", "bc", "decoder"] and all(sup[k] != sup_b[k] for k in sup)
    assert sup["lam"] != keys("lapo", files)["lam"]
    stages = pl.chain("lapo-labels", str(files["data"]), str(files["labeled"]), "")
    lam = stages[0]
    assert (lam.preset, lam.files["labeled"], lam.extra) == ("lam-lapo-labels", str(files["labeled"]), {"method": "lapo-labels"})
    (planned, *_) = pl.plan_chain(stages, Path("/nonexistent"), "cpu", pl.split_overrides(TINY, stages, "lapo-labels"))
    cfg = planned.cfg
    assert type(cfg).__name__ == "LAPOLabelsConfig" and cfg.fsq_levels == (2, 2, 4) and not cfg.use_aug
    assert (cfg.labeled_batch_size, cfg.label_coef, cfg.label_norm) == (16, 0.0354, "variance")
    assert planned.path.name.startswith("lam-lapo-labels-")


def test_compile_changes_no_key(files: dict[str, Path]) -> None:
    """torch.compile changes speed, not results: --compile true must find the stages trained
    without it, under the keys that stage folders written before this fix already carry
    (their manifests hold compile false)."""
    base = keys("laom", files)
    assert keys("laom", files, extra=["--compile", "true"]) == base
    assert keys("bc", files, extra=["--compile", "true"]) == keys("bc", files)
    stages = pl.chain("laom", str(files["data"]), str(files["labeled"]), "")
    routed = pl.split_overrides([*TINY, "--compile", "true"], stages, "laom")
    planned = pl.plan_chain(stages, Path("/nonexistent"), "cpu", routed)
    assert all(p.cfg.compile is True and p.manifest["config"]["compile"] is False for p in planned)


def test_override_routing(files: dict[str, Path]) -> None:
    stages = pl.chain("laom", str(files["data"]), str(files["labeled"]), "")
    routed = pl.split_overrides(["--seed", "3", "--bc.epochs=4", "--lam.frame_stack", "2"], stages, "laom")
    assert routed == {
        "lam": ["--seed", "3", "--frame_stack", "2"],
        "bc": ["--seed", "3", "--epochs", "4"],
        "decoder": ["--seed", "3"],
    }
    # Another method's stage is skipped (one sweep command line for all methods) ...
    ignored: list[str] = []
    assert pl.split_overrides(["--idm.idm_updates", "3"], stages, "laom", ignored) == {"lam": [], "bc": [], "decoder": []}
    assert ignored == ["--idm.idm_updates"]
    # ... a stage no method has is a typo.
    with pytest.raises(LaomError, match="no stage 'dec'"):
        pl.split_overrides(["--dec.hidden_dim", "3"], stages, "laom")
    with pytest.raises(LaomError, match="no stage of laom"):
        pl.split_overrides(["--bogus", "1"], stages, "laom")
    # A flag's values run to the next flag (lists as words); parse_config judges them.
    assert pl.split_overrides(["--encoder_channels", "8", "16", "--seed"], stages, "laom")["bc"] == [
        "--encoder_channels", "8", "16", "--seed"]  # fmt: skip
    with pytest.raises(LaomError, match="--seed needs a value"):
        parse_config(pl.stage_configs("bc")["bc"], None, pl.split_overrides(["--seed"], stages, "laom")["bc"])


def test_idm_settings_reach_the_stage_that_has_them(files: dict[str, Path]) -> None:
    """The IDM baseline was one stage ``idm``; its policy is stage idm-bc now. A
    ``--idm.FIELD`` setting reaches whichever of the two has FIELD (both for a field both
    have), so sweep command lines written for the one stage train the same models."""
    stages = pl.chain("idm", str(files["data"]), str(files["labeled"]), "")
    assert [(s.name, s.former) for s in stages] == [("idm", ""), ("idm-bc", "idm")]
    routed = pl.split_overrides(["--idm.idm_updates", "3", "--idm.epochs", "4", "--idm.max_trajectories", "2",
                                 "--idm.encoder_channels", "8,8,8", "--idm-bc.learning_rate", "1e-3",
                                 "--idm_bc.warmup_epochs", "0", "--epochs", "5", "--frame_stack", "2"], stages, "idm")  # fmt: skip
    assert routed == {
        "idm": ["--idm_updates", "3", "--encoder_channels", "8,8,8", "--frame_stack", "2"],
        "idm-bc": ["--epochs", "4", "--max_trajectories", "2", "--encoder_channels", "8,8,8", "--learning_rate", "1e-3",
                   "--warmup_epochs", "0", "--epochs", "5"],
    }  # fmt: skip
    # A field neither has goes to the stage of that name, whose config names it.
    unknown = pl.split_overrides(["--idm.bogus", "1"], stages, "idm")
    assert unknown == {"idm": ["--bogus", "1"], "idm-bc": []}
    with pytest.raises(LaomError, match="unknown option --bogus"):
        parse_config(stages[0].config_cls, None, unknown["idm"])
    # Another method has neither stage: both prefixes are skipped there.
    ignored: list[str] = []
    laom = pl.chain("laom", str(files["data"]), str(files["labeled"]), "")
    assert pl.split_overrides(["--idm.epochs", "3", "--idm-bc.epochs", "3"], laom, "laom", ignored) == {
        "lam": [], "bc": [], "decoder": []}  # fmt: skip
    assert ignored == ["--idm.epochs", "--idm-bc.epochs"]


def test_the_idm_is_keyed_apart_from_its_policy(files: dict[str, Path]) -> None:
    """Two stages: the IDM's key ignores the policy's settings (another policy reuses the
    IDM), the policy's follows the IDM's; both follow the labelled file."""
    base = keys("idm", files, extra=["--idm.idm_updates", "5"])
    assert list(base) == ["idm", "idm-bc"]
    policy = keys("idm", files, extra=["--idm.idm_updates", "5", "--idm.epochs", "3"])
    assert policy["idm"] == base["idm"] and policy["idm-bc"] != base["idm-bc"]
    idm = keys("idm", files, extra=["--idm.idm_updates", "6"])
    assert idm["idm"] != base["idm"] and idm["idm-bc"] != base["idm-bc"]
    other = keys("idm", files, "labeled_b", extra=["--idm.idm_updates", "5"])
    assert all(other[k] != base[k] for k in base)


@pytest.mark.integration
def test_pipeline_idm_trains_and_reuses_each_stage(files: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    idm = ["--idm.idm_updates", "5", "--idm.idm_batch_size", "8", "--idm.idm_head_dim", "16"]
    capsys.readouterr()
    assert main(pipeline(tmp_path, "idm", files, "labeled", *idm)) == 0
    first, _ = summary_of(capsys)
    assert list(first["stages"]) == ["idm", "idm-bc"] and not any(s["reused"] for s in first["stages"].values())
    idm_dir, bc_dir = (Path(first["stages"][k]["dir"]) for k in ("idm", "idm-bc"))
    assert re.fullmatch(r"idm-[0-9a-f]{8}", idm_dir.name) and re.fullmatch(r"idm-bc-idm-[0-9a-f]{8}", bc_dir.name)
    assert yaml.safe_load((bc_dir / "config.yaml").read_text())["idm"] == str(idm_dir)
    # Another policy setting: the IDM is reused, its policy trains again.
    assert main(pipeline(tmp_path, "idm", files, "labeled", *idm, "--idm.epochs", "2")) == 0
    second, log = summary_of(capsys)
    assert second["stages"]["idm"] == {**first["stages"]["idm"], "reused": True}, log
    assert not second["stages"]["idm-bc"]["reused"] and second["stages"]["idm-bc"]["dir"] != str(bc_dir)


def test_pipeline_input_errors(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["pipeline", "--method", "laom", "--data", str(files["data"]), "--out", str(tmp_path)]) == 2
    assert "needs --labeled" in capsys.readouterr().err
    assert main(["pipeline", "--method", "idm", "--data", str(tmp_path / "no.h5"), "--labeled", str(files["labeled"]),
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "no such file" in capsys.readouterr().err
    assert main([*pipeline(tmp_path, "laom", files), "--lam.bogus", "1"]) == 2
    assert "unknown option --bogus" in capsys.readouterr().err


@pytest.mark.integration
def test_pipeline_reuses_finished_stages(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(pipeline(tmp_path, "laom", files)) == 0
    first, _ = summary_of(capsys)
    assert not any(s["reused"] for s in first["stages"].values())
    assert first["action_probe_mse"] is not None and "return_mean" not in first
    lam_dir = Path(first["stages"]["lam"]["dir"])
    assert lam_dir.name.startswith("lam-") and json.loads((lam_dir / "stage.json").read_text())["stage"] == "lam"
    lam_metrics = (lam_dir / "metrics.jsonl").read_text()

    # Identical call: everything is reused, nothing is trained.
    assert main(pipeline(tmp_path, "laom", files)) == 0
    second, log = summary_of(capsys)
    assert all(s["reused"] for s in second["stages"].values()), log
    assert second["stages"] == {k: {**v, "reused": True} for k, v in first["stages"].items()}
    assert (lam_dir / "metrics.jsonl").read_text() == lam_metrics

    # Another labelled budget: LAM and latent BC are reused, only the decoder trains.
    assert main(pipeline(tmp_path, "laom", files, "labeled_b")) == 0
    third, _ = summary_of(capsys)
    assert third["stages"]["lam"] == second["stages"]["lam"] and third["stages"]["bc"] == second["stages"]["bc"]
    assert not third["stages"]["decoder"]["reused"]
    assert third["stages"]["decoder"]["dir"] != first["stages"]["decoder"]["dir"]
    assert len(list(tmp_path.glob("lam-*"))) == 1 and len(list(tmp_path.glob("decoder-*"))) == 2

    # The LAM's weights gone (pruned, or its records restored on a new machine): its
    # summary stays, the LAM trains again in its folder, and what read it trains again too.
    (lam_dir / "lam.pt").unlink()
    assert main(pipeline(tmp_path, "laom", files)) == 0
    fourth, log = summary_of(capsys)
    assert "lam.pt missing" in log and (lam_dir / "lam.pt").is_file()
    assert {"summary.json", "metrics.jsonl"} <= {f.name for f in (lam_dir / "superseded").iterdir()}
    assert fourth["stages"]["lam"] == {**first["stages"]["lam"], "reused": False}
    assert not fourth["stages"]["bc"]["reused"] and "upstream stage trained again" in log
    # The LAM's folder deleted: the same, its latent BC does not outlive it.
    shutil.rmtree(lam_dir)
    assert main(pipeline(tmp_path, "laom", files)) == 0
    fifth, log = summary_of(capsys)
    assert not fifth["stages"]["lam"]["reused"] and not fifth["stages"]["bc"]["reused"]
    assert "[bc]" in log and "upstream stage trained again" in log.split("[bc]")[1]
    assert [line for line in (lam_dir / "metrics.jsonl").read_text().splitlines() if '"update": 0' not in line]


@pytest.mark.integration
def test_pipeline_lapo_labels_end_to_end(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`laom pipeline --method lapo-labels`: LAM (with its labelled head), latent BC and
    decoder train; the same call reuses them; another labelled budget retrains the chain."""
    from laom.api import load_lam

    capsys.readouterr()
    assert main(pipeline(tmp_path, "lapo-labels", files)) == 0
    first, _ = summary_of(capsys)
    assert first["method"] == "lapo-labels" and list(first["stages"]) == ["lam", "bc", "decoder"]
    assert not any(s["reused"] for s in first["stages"].values()) and first["action_probe_mse"] is not None
    lam_dir = Path(first["stages"]["lam"]["dir"])
    assert lam_dir.name.startswith("lam-lapo-labels-")
    rows = [json.loads(line) for line in (lam_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["action_loss"] > 0 for r in rows)  # the labelled head trained
    lam = load_lam(lam_dir)
    assert lam.method == "lapo-labels" and lam.module.action_head is not None
    assert (Path(first["stages"]["decoder"]["dir"]) / "policy.pt").is_file()  # the acting policy

    assert main(pipeline(tmp_path, "lapo-labels", files)) == 0
    second, log = summary_of(capsys)
    assert all(s["reused"] for s in second["stages"].values()), log

    assert main(pipeline(tmp_path, "lapo-labels", files, "labeled_b")) == 0
    third, _ = summary_of(capsys)
    assert not any(s["reused"] for s in third["stages"].values())
    assert len(list(tmp_path.glob("lam-lapo-labels-*"))) == 2


@pytest.mark.integration
def test_pipeline_resumes_interrupted_stage(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import laom.training.trainlog as trainlog

    class Interrupting(trainlog.Progress):
        def __init__(self, *args: object, desc: str = "", **kwargs: object) -> None:
            super().__init__(*args, desc=desc, **kwargs)
            self.desc = desc

        def update(self, update: int, **postfix: object) -> None:
            super().update(update, **postfix)
            if update == 5 and self.desc.startswith("latent bc"):
                raise KeyboardInterrupt

    args = [*pipeline(tmp_path, "laom", files), "--bc.epochs", "2", "--bc.checkpoint_every", "2", "--bc.log_every", "1"]
    monkeypatch.setattr(trainlog, "Progress", Interrupting)
    capsys.readouterr()
    assert main(args) == 130
    (bc_dir,) = tmp_path.glob("bc-*")
    assert not (bc_dir / "summary.json").is_file() and (bc_dir / "checkpoints" / "last.pt").is_file()
    monkeypatch.setattr(trainlog, "Progress", Interrupting.__mro__[1])
    capsys.readouterr()

    assert main(args) == 0
    summary, log = summary_of(capsys)
    assert "[lam]" in log and "done, reused" in log.split("[bc]")[0].split("[lam]")[1]
    assert "resuming" in log.split("[bc]")[1].splitlines()[0]
    assert summary["stages"]["bc"]["dir"] == str(bc_dir)
    updates = [json.loads(line)["update"] for line in (bc_dir / "metrics.jsonl").read_text().splitlines()]
    assert updates == list(range(1, len(updates) + 1)) and updates[-1] == 14  # 7 batches/epoch x 2


@pytest.mark.integration
def test_pipeline_bc_with_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = cheetah(tmp_path / "cheetah.h5", trajectories=3)
    labeled = cheetah(tmp_path / "cheetah_labeled.h5", trajectories=2, seed=7)
    args = ["pipeline", "--method", "bc", "--labeled", str(labeled), "--data", str(data), "--out", str(tmp_path / "root"),
            "--episodes", "2", "--max-steps", "4", "--normalizer", "-2.5", "--no-progress", "--threads", "1",
            "--encoder_channels", "[8,8,8]", "--batch_size", "16", "--epochs", "1", "--min_updates", "5",
            "--frame_stack", "2"]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    summary, _ = summary_of(capsys)
    assert summary["episodes"] == 2 and summary["env"]["task"] == "cheetah-run"
    assert summary["normalized_return"] == pytest.approx(summary["return_mean"] / -2.5)
    assert list(summary["stages"]) == ["bc-baseline"]
    assert main(args) == 0
    again, log = summary_of(capsys)
    assert "[evaluate]" in log and "reused" in log.split("[evaluate]")[1].splitlines()[0]
    assert again["return_mean"] == summary["return_mean"]


def test_bc_full_needs_only_data(files: dict[str, Path]) -> None:
    (stage,) = pl.chain("bc-full", str(files["data"]), "", "")
    assert stage.files["data"] == str(files["data"])
    (stage,) = pl.chain("bc", "", str(files["labeled"]), "")
    assert stage.files["data"] == str(files["labeled"])


def test_pipeline_until_a_stage(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--until lam`: the LAM and its probes alone (a finding's seeds at a fifth of a run's
    compute); a cut chain cannot be evaluated, and a stage the method lacks is named."""
    capsys.readouterr()
    assert main([*pipeline(tmp_path, "lapo", files), "--until", "lam"]) == 0
    summary, _ = summary_of(capsys)
    assert list(summary["stages"]) == ["lam"] and summary["until"] == "lam"
    assert summary["action_probe_mse"] is not None and "return_mean" not in summary
    assert not list(tmp_path.glob("bc-*")) and not list(tmp_path.glob("decoder-*"))
    # The whole chain afterwards reuses that LAM and writes its own summary file.
    assert main(pipeline(tmp_path, "lapo", files)) == 0
    whole, _ = summary_of(capsys)
    assert whole["stages"]["lam"]["reused"] and whole["summary_file"] != summary["summary_file"]
    assert "until" not in whole
    for extra, message in (
        (["--until", "lam", "--episodes", "1"], "--until lam: lapo stops before its acting policy, so there is nothing to evaluate; add --episodes 0"),
        (["--until", "idm"], "--until idm: lapo has no such stage (its stages: lam, bc, decoder)"),
    ):  # fmt: skip
        assert main([*pipeline(tmp_path / "bad", "lapo", files), *extra]) == 2  # (the last --episodes counts)
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
