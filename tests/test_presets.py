"""The CPU presets are the paper's, moved by stated rules (laom/training/presets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from laom.training.presets import (
    CPU_TRANSITIONS,
    PAPER_TRANSITIONS,
    RULES,
    derive,
    load_preset,
    markdown_table,
    preset_file,
    updates,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("stage", sorted(RULES))
def test_every_cpu_value_has_a_rule_and_follows_from_the_paper(stage):
    paper = load_preset("paper", stage)
    cpu = load_preset("cpu", stage)
    assert set(cpu) == set(RULES[stage]), f"fields without a rule or rules without a field in {stage}"
    assert derive(stage, paper, cpu) == cpu


def test_share_rules_keep_the_papers_shares():
    paper = load_preset("paper", "lam-laom-labels")
    cpu = load_preset("cpu", "lam-laom-labels")
    lag = lambda v, n: 1 / v["target_tau"] / updates(v, n)  # noqa: E731
    assert lag(cpu, CPU_TRANSITIONS) == pytest.approx(lag(paper, PAPER_TRANSITIONS), rel=0.01)
    assert cpu["warmup_epochs"] / cpu["epochs"] == pytest.approx(paper["warmup_epochs"] / paper["epochs"], rel=0.01)
    assert cpu["labeled_batch_size"] / cpu["batch_size"] == paper["labeled_batch_size"] / paper["batch_size"]
    assert cpu["latent_dim"] == paper["latent_dim"] and cpu["head_dim"] == paper["head_dim"]


@pytest.mark.parametrize("preset", ["cpu", "demo", "paper"])
def test_a_labelled_lam_is_its_base_lam_plus_the_labels(preset):
    """Every method whose LAM reads --labeled (laom-labels, lapo-labels) is, in every
    preset, the unlabelled method with the same model and defaults (lapo-labels: lapo,
    not lapo-nofsq) plus the three label fields, and
    those fields are the same for all of them: the labels are the one change."""
    from laom import methods

    labelled = [m for m in methods.lam_methods() if m.lam_reads_labels]
    assert {m.name for m in labelled} >= {"laom-labels", "lapo-labels"}
    fields = {"labeled_batch_size", "label_coef", "label_norm"}
    labels = []
    for method in labelled:
        own = {k: v for k, v in method.lam.defaults.items() if k not in fields}
        (base,) = [m for m in methods.lam_methods()
                   if m.lam.model == method.lam.model and not m.lam_reads_labels and dict(m.lam.defaults) == own]
        values, base_values = load_preset(preset, method.preset("lam")), load_preset(preset, base.preset("lam"))
        assert set(values) - set(base_values) == fields and values["method"] == method.name
        assert {k: v for k, v in values.items() if k not in fields | {"method"}} == {
            k: v for k, v in base_values.items() if k != "method"
        }, (preset, method.name)
        labels.append({k: values[k] for k in fields})
    assert all(x == labels[0] for x in labels)


def test_lam_rules_follow_the_model_and_the_labels():
    assert RULES["lam-lapo-labels"].keys() == RULES["lam-lapo"].keys() | {"labeled_batch_size", "label_coef", "label_norm"}
    assert RULES["lam-laom-labels"].keys() == RULES["lam-laom"].keys() | {"labeled_batch_size", "label_coef", "label_norm"}
    assert RULES["lam-lapo-labels"]["label_coef"] is RULES["lam-laom-labels"]["label_coef"]


def test_a_changed_cpu_value_breaks_its_rule():
    paper = load_preset("paper", "lam-laom")
    cpu = {**load_preset("cpu", "lam-laom"), "target_tau": 0.001}
    assert derive("lam-laom", paper, cpu)["target_tau"] != cpu["target_tau"]


def test_the_idm_baselines_policy_keeps_the_one_stage_recipe():
    """The IDM baseline's two presets together hold what its one stage's preset held (at
    commit bda8351): the IDM's fields in idm.yaml, the policy's in idm-bc.yaml, the frame
    stack (the policy reads it from the IDM), encoder channels and checkpoint cadence,
    which both stages had, in both where each stage has them; nothing else."""
    before = {
        "cpu": {"idm_updates": 1000, "idm_batch_size": 64, "idm_learning_rate": 3.0e-4, "idm_warmup_updates": 50,
                "idm_encoder_scale": 1, "idm_num_res_blocks": 2, "idm_head_dim": 256, "idm_use_aug": False,
                "idm_arch": "stacked", "frame_stack": 3, "batch_size": 64, "epochs": 13, "learning_rate": 3.0e-4,
                "warmup_epochs": 0.1, "encoder_scale": 1, "num_res_blocks": 2, "encoder_channels": [16, 32, 32],
                "pooling": "flatten", "head_hidden": 256, "shift_aug": 4, "use_aug": False, "checkpoint_every": 200},
        "paper": {"idm_updates": 10000, "idm_batch_size": 512, "idm_learning_rate": 3.0e-4, "idm_warmup_updates": 500,
                  "idm_encoder_scale": 12, "idm_num_res_blocks": 2, "idm_head_dim": 1024, "idm_use_aug": True,
                  "idm_arch": "shared", "frame_stack": 3, "batch_size": 512, "epochs": 10, "learning_rate": 1.0e-4,
                  "warmup_epochs": 1.0, "encoder_scale": 32, "num_res_blocks": 2, "encoder_channels": [16, 32, 32],
                  "use_aug": False, "pooling": "mean", "relu_before_pool": False, "head_hidden": 0, "shift_aug": 0,
                  "checkpoint_every": 1000},
    }  # fmt: skip
    for preset, values in before.items():
        idm, policy = load_preset(preset, "idm"), load_preset(preset, "idm-bc")
        assert {**policy, **idm} == values, preset
        assert set(idm) & set(policy) == {"encoder_channels", "checkpoint_every"}
        assert set(idm) == {k for k in values if k.startswith("idm_")} | {"frame_stack", "encoder_channels",
                                                                             "checkpoint_every"}  # fmt: skip


def test_readme_holds_the_preset_table():
    assert markdown_table() in README.read_text()


def _config_class(stage: str) -> type:
    from laom.training.baselines import BCBaselineConfig, IDMBCConfig, IDMConfig
    from laom.training.bc import BCConfig
    from laom.training.decoder import DecoderConfig
    from laom.training.lam import CONFIGS

    if stage.startswith("lam-"):
        return CONFIGS[stage.removeprefix("lam-")]
    return {"bc": BCConfig, "bc-baseline": BCBaselineConfig, "idm": IDMConfig, "idm-bc": IDMBCConfig,
            "decoder": DecoderConfig}[stage]


@pytest.mark.parametrize("stage", sorted(RULES))
def test_cpu_presets_are_the_code_defaults(stage):
    defaults = _config_class(stage)()
    for key, value in load_preset("cpu", stage).items():
        got = getattr(defaults, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


@pytest.mark.parametrize("stage", ["bc", "bc-baseline", "idm-bc"])
def test_paper_policy_presets_are_the_releases(stage):
    from laom.training.config import parse_config

    cfg = parse_config(_config_class(stage), preset_file("paper", stage), [])
    assert (cfg.pooling, cfg.relu_before_pool, cfg.head_hidden, cfg.shift_aug) == ("mean", False, 0, 0)


@pytest.mark.parametrize("stage", sorted(RULES))
def test_demo_preset_parses_and_keeps_the_cpu_recipe(stage):
    from laom.training.config import parse_config

    path = preset_file("demo", stage)
    assert path is not None, f"the demo preset lacks {stage}"
    cfg = parse_config(_config_class(stage), path, [])
    if stage in ("bc", "bc-baseline", "idm-bc"):
        assert (cfg.pooling, cfg.head_hidden, cfg.shift_aug) == ("flatten", 256, 4)
    if stage.startswith("lam-laom"):
        epochs_updates = cfg.epochs * 20_000 / cfg.batch_size  # the demo's 20 trajectories
        assert 1 / cfg.target_tau / epochs_updates == pytest.approx(0.01, rel=0.05)  # the EMA rule


# --------------------------------------------------------------------------- shipped as package data


REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p.relative_to(REPO)) for p in (REPO / "laom" / "configs").glob("*/*.yaml"))


def test_presets_are_found_through_importlib_resources_from_any_directory(tmp_path, monkeypatch):
    from importlib.resources import files

    from laom.training.config import resolve_preset
    from laom.training.presets import preset_names

    assert preset_names() == ("cpu", "demo", "paper")
    assert {Path(n).parent.name for n in SHIPPED} == {"cpu", "demo", "paper"}
    monkeypatch.chdir(tmp_path)  # nothing relative to the working directory
    for name in SHIPPED:
        _, _, preset, stage = Path(name).with_suffix("").parts
        assert preset_file(preset, stage) == Path(str(files("laom") / "configs" / preset / f"{stage}.yaml"))
        assert resolve_preset(preset, stage) == preset_file(preset, stage)
    assert preset_file("paper", "no-such-stage") is None and preset_file("..", "pyproject") is None


def test_a_zipped_install_reads_presets_through_a_file_on_disk(tmp_path, monkeypatch):
    """A zip has no path to hand draccus: the preset is extracted, with the same text."""
    import zipfile

    import laom.training.presets as presets_mod

    archive = tmp_path / "laom.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("laom/configs/paper/bc.yaml", "batch_size: 7\n")
    monkeypatch.setattr(presets_mod, "presets_root", lambda: zipfile.Path(archive, "laom/configs/"))
    assert presets_mod.preset_names() == ("paper",)
    path = preset_file("paper", "bc")
    assert isinstance(path, Path) and path.read_text() == "batch_size: 7\n"
    assert preset_file("paper", "idm") is None and preset_file("cpu", "bc") is None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would install, built offline from a copy of the sources
    (the build's own folders stay out of the checkout)."""
    import shutil
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO / "laom", src / "laom", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", str(src), "-w", str(tmp / "dist")], check=True, capture_output=True)  # fmt: skip
    (built,) = (tmp / "dist").glob("laom-*.whl")
    return built


def test_the_wheel_ships_every_preset(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.startswith("laom/configs/")) == SHIPPED


@pytest.mark.integration
def test_an_installed_wheel_loads_the_paper_preset_outside_the_checkout(wheel, tmp_path, capsys):
    """What issue 14 saw fail: `--config paper` after a non-editable install."""
    import os
    import subprocess
    import sys

    from laom.cli import main

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)  # fmt: skip
    script = ("import sys, laom; from laom.cli import main; print(laom.__file__, file=sys.stderr); "
              "sys.exit(main(['config', 'show', 'lam-laom', '--config', 'paper']))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the checkout's editable install
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == str(site / "laom" / "__init__.py")
    capsys.readouterr()
    assert main(["config", "show", "lam-laom", "--config", "paper"]) == 0
    assert run.stdout == capsys.readouterr().out
