"""The method registry (laom/methods.py): every list of methods, every method's stages,
model, config and colour come from its entries, so a method is added in one place."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from laom import methods
from laom.errors import LaomError
from laom.methods import LAMSpec, Method, StageSpec
from laom.training.presets import load_preset, preset_file


def _choices(path: list[str], flag: str) -> tuple[str, ...]:
    """The ``choices`` of ``flag`` in the parser of ``laom <path...>``."""
    from laom.cli import build_parser

    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    action = next(a for a in parser._actions if flag in a.option_strings)
    return tuple(action.choices)


def test_every_command_offers_the_registrys_methods():
    lams = tuple(m.name for m in methods.lam_methods())
    assert lams == tuple(m for m in methods.names() if methods.METHODS[m].lam is not None)
    assert _choices(["train", "lam"], "--method") == lams
    assert _choices(["pipeline"], "--method") == methods.names()
    from laom.experiments import cli as exp_cli
    from laom.experiments.sweep_config import METHODS
    from laom.training import lam, pipeline

    assert METHODS == exp_cli.METHODS == pipeline.METHODS == methods.names()
    assert lam.METHODS == lams and tuple(lam.CONFIGS) == lams
    # `laom config show` names one LAM preset per LAM method, then the other stages.
    assert list(pipeline.preset_stages()) == [f"lam-{m}" for m in lams] + list(methods.STAGE_NAMES[1:])
    # every listed sweep default is a method
    assert set(exp_cli.DEFAULT_METHODS.split(",")) <= set(methods.names())


def test_help_texts_name_every_method(capsys):
    from laom.cli import main

    for argv in (["sweep", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        budgeted = [m.name for m in methods.METHODS.values() if m.reads("labeled")]
        assert all(name in text for name in budgeted), argv


def test_reports_take_labels_and_colours_from_the_registry():
    from laom.experiments import paper, report

    assert report.COLORS == {m.name: m.color for m in methods.METHODS.values()}
    assert paper.LABELS == {m.name: m.label for m in methods.METHODS.values()}
    colours = list(report.COLORS.values())
    assert len(set(colours)) == len(colours), "two methods share a colour"
    assert not set(colours) & set(report.EXTRA_COLORS), "a variant could take a method's colour"
    # The paper's own names for its methods.
    assert [paper.LABELS[m] for m in ("lapo", "laom", "laom-labels")] == ["LAPO", "LAOM", "LAOM+supervision"]


def test_each_stage_has_its_config_trainer_and_presets():
    from laom.training import pipeline

    for method in methods.METHODS.values():
        stages = pipeline.chain(method.name, "D", "L", "E")
        assert [s.name for s in stages] == list(method.stage_names) == list(pipeline.method_stages(method.name))
        for stage, spec in zip(stages, method.stages, strict=True):
            assert stage.train is pipeline.stage_trainer(spec.name)
            fields = {f.name for f in dataclasses.fields(stage.config_cls)}
            assert set(spec.files) | set(spec.upstream) <= fields, (method.name, spec.name)
            for preset in ("cpu", "demo", "paper"):
                assert preset_file(preset, method.preset(spec.name)) is not None, (preset, method.name, spec.name)


def test_lam_entries_name_their_model_config_and_cpu_defaults():
    from laom.models import LAM_CLASSES, lam_class
    from laom.training.lam import CONFIGS

    for method in methods.lam_methods():
        assert method.lam is not None
        cls = lam_class(method.name)
        assert LAM_CLASSES[cls.kind] is cls, "a saved LAM of this method would not load"
        config = CONFIGS[method.name]
        assert config.__name__ == method.lam.config and config().method == method.name
        cpu = load_preset("cpu", method.preset("lam"))
        for field, value in method.lam.defaults.items():
            assert (list(value) if isinstance(value, tuple) else value) == cpu[field], (method.name, field)
        assert callable(getattr(cls, "from_config", None))


def test_which_stages_a_labelled_budget_retrains():
    """What the sweep shares across budgets and what `--plan` marks as new per subset."""
    from laom.experiments.plan import SHARED_STAGE_METHODS

    assert SHARED_STAGE_METHODS == ("lapo", "lapo-nofsq", "laom")
    get = methods.get
    assert get("laom").label_stages == {"decoder"} and get("laom").shares_stages
    assert get("laom-labels").label_stages == {"lam", "bc", "decoder"} and not get("laom-labels").shares_stages
    assert get("laom-labels").lam_reads_labels and not get("laom").lam_reads_labels
    assert get("bc").reads("labeled") and not get("bc").reads("data")
    assert get("bc-full").reads("data") and not get("bc-full").reads("labeled") and not get("bc-full").shares_stages
    # The IDM baseline: its IDM reads the labels, its policy (idm-bc) builds on that IDM.
    assert get("idm").stage_names == ("idm", "idm-bc") and get("idm").label_stages == {"idm", "idm-bc"}
    assert get("idm").stage("idm-bc").upstream == {"idm": "idm"} and get("idm").stage("idm-bc").former == "idm"
    assert not get("idm").shares_stages and get("idm").reads("data") and get("idm").reads("labeled")
    # LAPO without FSQ: LAPO's model and chain, one default changed.
    nofsq = get("lapo-nofsq")
    assert nofsq.lam.model == get("lapo").lam.model and nofsq.stage_names == get("lapo").stage_names
    assert dict(nofsq.lam.defaults)["fsq_levels"] == () and nofsq.shares_stages
    # LAPO+supervision: LAPO's model and chain, with the LAM reading the labels.
    lapo, sup = get("lapo"), get("lapo-labels")
    assert sup.lam.model == lapo.lam.model and sup.stage_names == lapo.stage_names
    assert sup.lam_reads_labels and not sup.shares_stages and sup.label_stages == {"lam", "bc", "decoder"}
    assert sup.label == "LAPO+supervision"
    assert dict(sup.lam.defaults) == {**lapo.lam.defaults, **get("laom-labels").lam.defaults}
    with pytest.raises(LaomError, match="--method nope: expected one of bc, idm, lapo"):
        get("nope")


def test_a_malformed_entry_is_refused_when_written():
    lam = StageSpec("lam", {"data": "data"})
    with pytest.raises(ValueError, match="unknown stage"):
        Method("x", "X", "red", (StageSpec("train", {}),), "x")
    with pytest.raises(ValueError, match="does not precede"):
        Method("x", "X", "red", (StageSpec("bc", {"data": "data"}, {"lam": "lam"}), lam), "x", LAMSpec("m:C", "C"))
    with pytest.raises(ValueError, match="unknown input"):
        Method("x", "X", "red", (StageSpec("bc-baseline", {"data": "labelled"}),), "x")
    with pytest.raises(ValueError, match="go together"):
        Method("x", "X", "red", (lam,), "x")
    with pytest.raises(TypeError):
        methods.METHODS["lapo"].stages[0].files["labeled"] = "labeled"  # read-only


def test_the_registry_imports_no_torch():
    code = "import sys, laom.methods, laom.experiments.cli; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
