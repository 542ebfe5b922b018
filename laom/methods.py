"""The methods this package trains, one registry entry each.

A method was once spelled out in about ten places (the CLI's choices, the pipeline's
chains, the sweep's list of methods that share stages across budgets, the report's
colours, the LAM trainer's ``if method == "laom-labels"``), kept in step by hand. Each
of them now reads :data:`METHODS`: a method's name, its label in reports, its colour in
plots, its stages in order with the files each reads and the stages each builds on, and
for a latent action model the model class, the config class and the CPU preset's
defaults. Adding a variant is one entry here plus its model (and its preset YAMLs, which
are data): ``lapo-labels`` (LAPO+supervision) is LAPO's entry with a labelled LAM, and
its model is LAPO's with LAOM+supervision's action head.

This module imports neither torch nor any other part of laom but :mod:`laom.errors`, so
the bottom layer (``laom.models``) and ``laom --help`` can read it for free; classes and
training functions are named, not imported (``laom.models.lam_class``,
``laom.training.pipeline.stage_trainer`` resolve them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from laom.errors import LaomError

# The stages a chain is made of, in the order ``laom train`` and the docs list them.
STAGE_NAMES = ("lam", "bc", "decoder", "idm", "idm-bc", "bc-baseline")
# What a stage's file fields are set from: the command's --data, --labeled, --eval-data;
# "" leaves the field empty (a LAOM's LAM has a `labeled` field it must not read).
INPUTS = ("data", "labeled", "eval_data", "")
# The method whose return normalises the others' (the paper's BC on the full dataset).
NORMALIZER = "bc-full"


@dataclass(frozen=True)
class StageSpec:
    """One stage of a method's chain: which command inputs its file fields read
    (``{"data": "labeled"}``: BC's ``--data`` is the labelled subset) and which earlier
    stages' run folders its fields name (``{"lam": "lam"}``).

    ``former`` is the stage this one was split from: a ``--<former>.FIELD`` setting
    reaches each stage of the chain that is or was part of ``former`` and has FIELD, so
    command lines written before the split mean what they meant. The IDM baseline was
    one stage ``idm``; its policy is stage idm-bc now, and ``--idm.epochs`` (the
    policy's), ``--idm.idm_updates`` (the IDM's) and ``--idm.encoder_channels`` (both
    had it) reach the same models as before."""

    name: str
    files: Mapping[str, str]
    upstream: Mapping[str, str] = field(default_factory=dict)
    former: str = ""

    def __post_init__(self) -> None:
        # Read-only views, so an entry cannot be changed by whoever reads it.
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "upstream", MappingProxyType(dict(self.upstream)))


@dataclass(frozen=True)
class LAMSpec:
    """A method's latent action model: the class that trains (``module:Class``, its file
    under laom/models; saved LAMs name the class by its ``method`` attribute), the name
    of its config class in :mod:`laom.training.lam`, and that class's defaults where
    they differ from LAOM's ``LAMConfig``: the method's CPU preset
    (laom/configs/cpu/lam-<method>.yaml; tests/test_presets.py checks they agree)."""

    model: str
    config: str
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


@dataclass(frozen=True)
class Method:
    """One method: ``name`` (commands, run folders, runs.jsonl), ``label`` (reports and
    figures), ``color`` (matplotlib), ``stages`` in the order they train, ``lam`` for a
    latent action model, ``summary`` one line for help texts."""

    name: str
    label: str
    color: str
    stages: tuple[StageSpec, ...]
    summary: str
    lam: LAMSpec | None = None

    def __post_init__(self) -> None:
        seen: list[str] = []
        for stage in self.stages:
            if stage.name not in STAGE_NAMES:
                raise ValueError(f"{self.name}: unknown stage {stage.name!r}")
            if any(role not in INPUTS for role in stage.files.values()):
                raise ValueError(f"{self.name}: stage {stage.name} reads an unknown input")
            if any(up not in seen for up in stage.upstream.values()):
                raise ValueError(f"{self.name}: stage {stage.name} builds on a stage that does not precede it")
            if stage.former and stage.former not in STAGE_NAMES:
                raise ValueError(f"{self.name}: stage {stage.name} was part of an unknown stage")
            seen.append(stage.name)
        if (self.lam is None) == ("lam" in seen):
            raise ValueError(f"{self.name}: a lam stage and a LAM spec go together")

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)

    def reads(self, source: str) -> bool:
        """Whether any stage reads ``source`` (data, labeled, eval_data): the command
        needs that file only then (BC trains on --labeled alone, BC-full on --data)."""
        return any(source in s.files.values() for s in self.stages)

    @property
    def lam_reads_labels(self) -> bool:
        """The LAM itself trains on the labelled file (a labelled action head on z): it
        needs --labeled, and its LAM differs per labelled budget."""
        return self.lam is not None and "labeled" in self.stage("lam").files.values()

    @property
    def label_stages(self) -> frozenset[str]:
        """The stages whose result depends on the labelled file: they read it or build on
        a stage that does. A sweep retrains only these per labelled budget."""
        out: set[str] = set()
        for s in self.stages:
            if "labeled" in s.files.values() or any(up in out for up in s.upstream.values()):
                out.add(s.name)
        return frozenset(out)

    @property
    def shares_stages(self) -> bool:
        """Its runs at different labelled budgets share their first stages (LAPO's and
        LAOM's LAM and latent BC), so a sweep trains those once per (task, seed)."""
        return self.reads("labeled") and self.stages[0].name not in self.label_stages

    def preset(self, stage: str) -> str:
        """The file stem of ``stage`` in a preset folder: one LAM file per method
        (their defaults differ), one file per stage otherwise."""
        return f"lam-{self.name}" if stage == "lam" else stage


def _lam_chain(labelled: bool) -> tuple[StageSpec, ...]:
    """LAM -> latent BC -> action decoder. Only a labelled LAM reads --labeled in its
    first stage; the others' decoders alone do."""
    return (
        StageSpec("lam", {"data": "data", "eval_data": "eval_data", "labeled": "labeled" if labelled else ""}),
        StageSpec("bc", {"data": "data"}, {"lam": "lam"}),
        StageSpec("decoder", {"labeled": "labeled", "eval_data": "eval_data"}, {"policy": "bc"}),
    )


LAPO_MODEL = "laom.models.lapo:LAPO"
LAOM_MODEL = "laom.models.laom:LAOM"
# The CPU preset's labelled batch and label weight (laom/training/presets.py: the paper's
# 128 per 512 unlabelled, and 0.001 x the release's action variance 35.4).
_LABELS = {"labeled_batch_size": 16, "label_coef": 0.0354}
_LAPO = {"fsq_levels": (2, 2, 4), "use_aug": False}

# In the order commands, sweeps and reports list them (a sweep runs its methods in it).
METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    Method("bc", "BC", "tab:blue", (StageSpec("bc-baseline", {"data": "labeled", "eval_data": "eval_data"}),),
           "behaviour cloning on the labelled subset"),
    Method("idm", "IDM", "tab:orange",
           (StageSpec("idm", {"labeled": "labeled"}),
            StageSpec("idm-bc", {"data": "data", "eval_data": "eval_data"}, {"idm": "idm"}, former="idm")),
           "an inverse dynamics model on the labelled subset pseudo-labels --data, BC on them"),
    Method("lapo", "LAPO", "tab:green", _lam_chain(False), "LAPO: pixel forward model, FSQ latents",
           LAMSpec(LAPO_MODEL, "LAPOConfig", _LAPO)),
    Method("lapo-nofsq", "LAPO w/o FSQ", "yellowgreen", _lam_chain(False),
           "LAPO without quantisation (the paper's LAOM-vs-LAPO probe ratio is against it)",
           LAMSpec(LAPO_MODEL, "LAPONoFSQConfig", {**_LAPO, "fsq_levels": ()})),
    Method("laom", "LAOM", "tab:red", _lam_chain(False), "LAOM: latent forward model",
           LAMSpec(LAOM_MODEL, "LAMConfig")),
    Method("laom-labels", "LAOM+supervision", "tab:purple", _lam_chain(True),
           "LAOM with a linear action head on z trained on the labelled subset",
           LAMSpec(LAOM_MODEL, "LAOMLabelsConfig", _LABELS)),
    Method("lapo-labels", "LAPO+supervision", "teal", _lam_chain(True),
           "LAPO with LAOM+supervision's linear action head on z",
           LAMSpec(LAPO_MODEL, "LAPOLabelsConfig", {**_LAPO, **_LABELS})),
    Method(NORMALIZER, "BC (full data)", "tab:gray",
           (StageSpec("bc-baseline", {"data": "data", "eval_data": "eval_data"}),),
           "behaviour cloning on every action of --data (the normaliser)"),
)})  # fmt: skip


def names() -> tuple[str, ...]:
    return tuple(METHODS)


def lam_methods() -> tuple[Method, ...]:
    """The methods that train a latent action model (``laom train lam --method``)."""
    return tuple(m for m in METHODS.values() if m.lam is not None)


def get(name: str, flag: str = "--method") -> Method:
    """The entry of ``name``; a one-line LaomError naming the choices otherwise."""
    if name not in METHODS:
        raise LaomError(f"{flag} {name}: expected one of {', '.join(METHODS)}")
    return METHODS[name]


def lam_reads_labels(name: str) -> bool:
    """Whether ``name``'s LAM trains on the labelled file (False for unknown names, which
    the config's own choices refuse)."""
    return name in METHODS and METHODS[name].lam_reads_labels
