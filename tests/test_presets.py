"""The CPU presets are the paper's, moved by stated rules (laom/training/presets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from laom.training.common import REPO_CONFIGS
from laom.training.presets import (
    CPU_TRANSITIONS,
    PAPER_TRANSITIONS,
    RULES,
    derive,
    load_preset,
    markdown_table,
    updates,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("stage", sorted(RULES))
def test_every_cpu_value_has_a_rule_and_follows_from_the_paper(stage):
    paper = load_preset(REPO_CONFIGS, "paper", stage)
    cpu = load_preset(REPO_CONFIGS, "cpu", stage)
    assert set(cpu) == set(RULES[stage]), f"fields without a rule or rules without a field in {stage}"
    assert derive(stage, paper, cpu) == cpu


def test_share_rules_keep_the_papers_shares():
    paper = load_preset(REPO_CONFIGS, "paper", "lam-laom-labels")
    cpu = load_preset(REPO_CONFIGS, "cpu", "lam-laom-labels")
    lag = lambda v, n: 1 / v["target_tau"] / updates(v, n)  # noqa: E731
    assert lag(cpu, CPU_TRANSITIONS) == pytest.approx(lag(paper, PAPER_TRANSITIONS), rel=0.01)
    assert cpu["warmup_epochs"] / cpu["epochs"] == pytest.approx(paper["warmup_epochs"] / paper["epochs"], rel=0.01)
    assert cpu["labeled_batch_size"] / cpu["batch_size"] == paper["labeled_batch_size"] / paper["batch_size"]
    assert cpu["latent_dim"] == paper["latent_dim"] and cpu["head_dim"] == paper["head_dim"]


def test_a_changed_cpu_value_breaks_its_rule():
    paper = load_preset(REPO_CONFIGS, "paper", "lam-laom")
    cpu = {**load_preset(REPO_CONFIGS, "cpu", "lam-laom"), "target_tau": 0.001}
    assert derive("lam-laom", paper, cpu)["target_tau"] != cpu["target_tau"]


def test_readme_holds_the_preset_table():
    assert markdown_table(REPO_CONFIGS) in README.read_text()


def _config_class(stage: str) -> type:
    from laom.training.baselines import BCBaselineConfig, IDMConfig
    from laom.training.bc import BCConfig
    from laom.training.decoder import DecoderConfig
    from laom.training.lam import CONFIGS

    if stage.startswith("lam-"):
        return CONFIGS[stage.removeprefix("lam-")]
    return {"bc": BCConfig, "bc-baseline": BCBaselineConfig, "idm": IDMConfig, "decoder": DecoderConfig}[stage]


@pytest.mark.parametrize("stage", sorted(RULES))
def test_cpu_presets_are_the_code_defaults(stage):
    defaults = _config_class(stage)()
    for key, value in load_preset(REPO_CONFIGS, "cpu", stage).items():
        got = getattr(defaults, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


@pytest.mark.parametrize("stage", ["bc", "bc-baseline", "idm"])
def test_paper_policy_presets_are_the_releases(stage):
    from laom.training.common import parse_config

    cfg = parse_config(_config_class(stage), REPO_CONFIGS / "paper" / f"{stage}.yaml", [])
    assert (cfg.pooling, cfg.relu_before_pool, cfg.head_hidden, cfg.shift_aug) == ("mean", False, 0, 0)


@pytest.mark.parametrize("stage", sorted(RULES) + ["idm"])
def test_demo_preset_parses_and_keeps_the_cpu_recipe(stage):
    from laom.training.common import parse_config

    path = REPO_CONFIGS / "demo" / f"{stage}.yaml"
    assert path.is_file(), f"the demo preset lacks {stage}"
    cfg = parse_config(_config_class(stage), path, [])
    if stage in ("bc", "bc-baseline", "idm"):
        assert (cfg.pooling, cfg.head_hidden, cfg.shift_aug) == ("flatten", 256, 4)
    if stage.startswith("lam-laom"):
        epochs_updates = cfg.epochs * 20_000 / cfg.batch_size  # the demo's 20 trajectories
        assert 1 / cfg.target_tau / epochs_updates == pytest.approx(0.01, rel=0.05)  # the EMA rule
