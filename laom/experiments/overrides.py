"""Which of a sweep's stage settings each method reads.

One sweep command line serves methods with different stages (``--idm.idm_updates`` means
nothing to laom), so the settings are routed per method before they reach a run: a run's
key must not change with a setting it never reads, and a typo must fail before any
training. The tokens are read by :func:`laom.training.options.override_items`, the same
reader ``laom pipeline`` and ``laom train`` use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from laom import methods as registry
from laom.errors import LaomError, require
from laom.training.options import override_items

USAGE = "stage overrides are --field value or --stage.field value"


def overrides_for(method: str, extra: Sequence[str]) -> list[str]:
    """The overrides that concern ``method``: ``--field`` if one of its stages has the
    field, ``--stage.field`` if it has the stage. One sweep command line serves methods
    with different stages, and a run's key must not change with settings it never reads."""
    from laom.training.pipeline import chain

    stages = chain(method, "data", "labeled", "eval")
    fields = {f.name for s in stages for f in dataclasses.fields(s.config_cls)}
    names = {s.name for s in stages} | {s.former for s in stages if s.former}  # --idm.epochs reaches idm-bc
    out: list[str] = []
    for name, values in override_items(extra, USAGE):
        stage, dot, fname = name.partition(".")
        if (stage.replace("_", "-") in names) if dot else (name.replace("-", "_") in fields):
            out += [f"--{name}", *values]
    return out


def check_overrides(methods: Sequence[str], extra: Sequence[str]) -> list[str]:
    """Fail before any training on an override no method has (a typo) or on ``--seed``;
    returns the ones only methods outside this sweep have (ignored, so one command line
    can serve sweeps over different methods)."""
    from laom.training.pipeline import STAGE_NAMES, chain

    fields: set[str] = set()
    for method in registry.names():
        fields |= {f.name for s in chain(method, "d", "l", "e") for f in dataclasses.fields(s.config_cls)}
    used: set[str] = set()
    stages: set[str] = set()
    for method in methods:
        used |= {f.name for s in chain(method, "d", "l", "e") for f in dataclasses.fields(s.config_cls)}
        stages |= {name for s in chain(method, "d", "l", "e") for name in (s.name, s.former) if name}
    ignored: list[str] = []
    for name, _ in override_items(extra, USAGE):
        stage, dot, fname = name.rpartition(".")
        fname = fname.replace("-", "_")
        require(fname != "seed", f"--{name}: the sweep sets every stage's seed from --seeds")
        if dot:
            stage = stage.replace("_", "-")
            require(stage in STAGE_NAMES, f"--{name}: no stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
            if stage not in stages:
                ignored.append(f"--{name}")
        elif fname not in fields:
            raise LaomError(f"unknown option --{name}: no stage of any method has it")
        elif fname not in used:
            ignored.append(f"--{name}")
    return ignored
