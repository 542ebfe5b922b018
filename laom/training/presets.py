"""The stage presets shipped with the package (``laom/configs/<preset>/<stage>.yaml``),
and the CPU presets as rules applied to the paper's: every value of ``laom/configs/cpu``
derived from ``laom/configs/paper`` and stated.

The YAML files are package data found through :mod:`importlib.resources`, so
``--config paper`` works from a wheel or a non-editable ``pip install .`` as it does
from a checkout (:func:`preset_file`).

Shrinking a preset by hand shrinks exactly the settings a paper credits and keeps others
that only make sense at its scale (an EMA horizon of 1,000 updates in a run of 1,500).
So each CPU value here is either the paper's value, the paper's value moved by a rule
that keeps its *share* of the run (warmup, EMA lag, labelled share of a batch, the
label loss's weight relative to the action variance), or a departure that says why
(compute, or a measurement in ``docs/``). ``tests/test_presets.py`` recomputes every
CPU value from the paper's YAML with these rules, and README's preset table is
:func:`markdown_table`'s output.

The reference CPU run: the study's dataset of ``CPU_TRANSITIONS`` transitions (100
trajectories of 1000 steps) against the paper's 5,000 trajectories.
"""

from __future__ import annotations

import atexit
import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from laom import methods

if TYPE_CHECKING:  # for type checkers only: Python 3.10 has it under another module
    from importlib.resources.abc import Traversable

PAPER_TRANSITIONS = 5_000_000  # 5,000 trajectories x 1,000 steps per task
CPU_TRANSITIONS = 100_000  # the CPU presets' reference dataset: 100 trajectories
# Mean per-dimension variance of the stored actions of the release's cheetah-run PPO
# expert (paper-facts §7): what the paper's label coefficient was tuned against.
RELEASE_ACTION_VARIANCE = 35.4

Values = Mapping[str, Any]


# --------------------------------------------------------------------------- the shipped presets


def presets_root() -> Traversable:
    """The folder of the shipped presets, wherever the package is installed: a checkout,
    site-packages, or a zip (where files are read through this handle, not a path)."""
    return files("laom").joinpath("configs")


def preset_names() -> tuple[str, ...]:
    """The shipped presets (cpu, demo, paper): the folders under :func:`presets_root`."""
    return tuple(sorted(p.name for p in presets_root().iterdir() if p.is_dir()))


# A zipped install has no file on disk for draccus to read: such presets are extracted
# once per process and removed at exit. From a folder, as_file returns the file itself.
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def preset_file(preset: str, stage: str) -> Path | None:
    """``<stage>.yaml`` of the shipped preset ``preset`` as a file on disk, or None when
    ``preset`` is not a shipped preset or has no file for ``stage``."""
    if preset not in preset_names():
        return None
    resource = presets_root().joinpath(preset, f"{stage}.yaml")
    if not resource.is_file():
        return None
    return Path(_EXTRACTED.enter_context(as_file(resource)))


# --------------------------------------------------------------------------- the CPU rules


@dataclass(frozen=True)
class Rule:
    """How one CPU field follows from the paper preset (``paper``) and the CPU preset's
    departures (``cpu``, for rules that keep a share of the CPU run)."""

    kind: str  # same | share | departure | bookkeeping
    text: str
    derive: Callable[[Values, Values], Any]


def same(field: str) -> Rule:
    return Rule("same", "as the paper", lambda paper, cpu: paper[field])


def departure(value: Any, why: str) -> Rule:
    return Rule("departure", why, lambda paper, cpu: value)


def bookkeeping(value: Any) -> Rule:
    return Rule("bookkeeping", "logging and checkpoint cadence (no effect on the result)", lambda p, c: value)


def updates(values: Values, transitions: int) -> float:
    return values["epochs"] * transitions / values["batch_size"]


def _round(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits: what a preset file holds."""
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


WARMUP = Rule(
    "share",
    "same share of training: paper warmup / paper epochs x CPU epochs",
    lambda paper, cpu: _round(paper["warmup_epochs"] / paper["epochs"] * cpu["epochs"]),
)
EMA = Rule(
    "share",
    "same EMA lag as a share of the run: 1/tau = 1,000 of the paper's 97,656 updates (1.02%)",
    lambda paper, cpu: _round(
        paper["target_tau"] * updates(paper, PAPER_TRANSITIONS) / updates(cpu, CPU_TRANSITIONS)
    ),
)
LABELED_BATCH = Rule(
    "share",
    "same labelled share of each update: 128 per 512 unlabelled",
    lambda paper, cpu: round(paper["labeled_batch_size"] / paper["batch_size"] * cpu["batch_size"]),
)
LABEL_COEF = Rule(
    "share",
    "same weight against the action variance: 0.001 x 35.4 (the release's cheetah actions), "
    "with label_norm variance",
    lambda paper, cpu: _round(paper["label_coef"] * RELEASE_ACTION_VARIANCE),
)
LABEL_NORM = departure(
    "variance",
    "standardised labelled actions, so label_coef means the same for any expert "
    "(the release: raw actions, `--label_norm raw`)",
)

COMPUTE_BATCH = departure(64, "compute: 8x fewer samples per update, so a short run gets 8x more updates")
COMPUTE_SCALE = departure(1, "compute: convolution cost grows with scale^2 (36x at scale 6)")
LAM_EPOCHS = departure(
    1, "compute: 100k samples per LAM (the paper: 50M); ~30 min for LAOM at ~57 samples/s on 2 AVX2 cores"
)
LAM_LR = departure(3e-4, "short runs: 3x the paper's rate at 1/8 of its batch (not ablated yet)")

_LAM_COMMON: dict[str, Rule] = {
    "batch_size": COMPUTE_BATCH,
    "epochs": LAM_EPOCHS,
    "learning_rate": LAM_LR,
    "warmup_epochs": WARMUP,
    "weight_decay": same("weight_decay"),
    "grad_clip": same("grad_clip"),
    "frame_stack": same("frame_stack"),
    "future_offset": same("future_offset"),
    "use_aug": same("use_aug"),
    "latent_dim": same("latent_dim"),
    "encoder_scale": COMPUTE_SCALE,
    "num_res_blocks": same("num_res_blocks"),
    "encoder_channels": same("encoder_channels"),
    "checkpoint_every": bookkeeping(200),
    "log_every": bookkeeping(50),
    "probe_samples": bookkeeping(20000),
    "probe_eval_samples": bookkeeping(20000),
    "method": same("method"),
}
# Measured against the paper's chain, one seed each (docs/lam_probes.md): at 100k samples
# LAOM+supervision's labelled head stays at chance on augmented pairs and the labels never
# reach the latents; without the chain they do. `--use_aug true` is the release's choice.
LAOM_NO_AUG = departure(
    False,
    "measured (docs/lam_probes.md): final probe / chance without -> with the chain: LAOM+supervision "
    "0.511 -> 0.782, LAOM 0.778 -> 0.804 (100k samples, seed 0)",
)
_LAOM: dict[str, Rule] = {
    **_LAM_COMMON,
    "use_aug": LAOM_NO_AUG,
    "head_dim": same("head_dim"),
    "head_blocks": same("head_blocks"),
    "target": same("target"),
    "target_tau": EMA,
}

POLICY_FLATTEN = departure(
    "flatten",
    "part of the measured recipe (docs/acting_policies.md): at scale 1 the mean of 32 channels "
    "cannot say where a limb is",
)
POLICY_HIDDEN = departure(256, "part of the measured recipe: an MLP head on the flattened map")
POLICY_SHIFT = departure(4, "part of the measured recipe: DrQ's random shift against memorising frames")
POLICY_SCALE = departure(1, "compute: convolution cost grows with scale^2 (1024x at scale 32)")
POLICY_LR = departure(3e-4, "short runs: 3x the paper's rate at 1/8 of its batch (not ablated)")

_POLICY: dict[str, Rule] = {
    "batch_size": COMPUTE_BATCH,
    "learning_rate": POLICY_LR,
    "warmup_epochs": departure(0.1, "the measured recipe's warmup (the paper states none for BC)"),
    "encoder_scale": POLICY_SCALE,
    "num_res_blocks": same("num_res_blocks"),
    "encoder_channels": same("encoder_channels"),
    "pooling": POLICY_FLATTEN,
    "head_hidden": POLICY_HIDDEN,
    "shift_aug": POLICY_SHIFT,
    "use_aug": same("use_aug"),
    "checkpoint_every": bookkeeping(200),
}

# A LAM's rules follow from its model (the method registry's entry) and from whether it
# trains on the labelled file, so a method variant needs no rules of its own.
_LAM_MODEL: dict[str, dict[str, Rule]] = {
    methods.LAOM_MODEL: _LAOM,
    methods.LAPO_MODEL: {**_LAM_COMMON, "fsq_levels": same("fsq_levels")},
}
_LABELS: dict[str, Rule] = {
    "labeled_batch_size": LABELED_BATCH,
    "label_coef": LABEL_COEF,
    "label_norm": LABEL_NORM,
}


def _lam_rules(method: methods.Method) -> dict[str, Rule]:
    assert method.lam is not None
    return {**_LAM_MODEL[method.lam.model], **(_LABELS if method.lam_reads_labels else {})}


RULES: dict[str, dict[str, Rule]] = {
    **{m.preset("lam"): _lam_rules(m) for m in methods.lam_methods()},
    "bc-baseline": {
        **_POLICY,
        "frame_stack": same("frame_stack"),
        "epochs": departure(13, "measured: BC-full's return curve reaches 80% of the expert (docs/acting_policies.md)"),
        "min_updates": departure(500, "at least 500 updates for a 2-trajectory subset (the paper: 2,500 at batch 512)"),
    },
    "bc": {
        **_POLICY,
        "epochs": departure(13, "the acting-policy recipe of BC-full, for latent BC too"),
        "weight_decay": same("weight_decay"),
        "cache_latents": departure(True, "a 100k x 8192 float16 cache is 1.6 GB (the paper's 82 GB is not)"),
        "cache_dtype": bookkeeping("float16"),
    },
    "idm": {
        "frame_stack": same("frame_stack"),
        "encoder_channels": same("encoder_channels"),
        "checkpoint_every": bookkeeping(200),
        "idm_updates": departure(1000, "compute: 64k samples (the paper: 5.1M); not yet scaled by a rule"),
        "idm_batch_size": COMPUTE_BATCH,
        "idm_learning_rate": same("idm_learning_rate"),
        "idm_warmup_updates": Rule(
            "share", "same share of the IDM's updates (5%)",
            lambda paper, cpu: round(paper["idm_warmup_updates"] / paper["idm_updates"] * cpu["idm_updates"]),
        ),  # fmt: skip
        "idm_encoder_scale": departure(1, "compute: convolution cost grows with scale^2 (144x at scale 12)"),
        "idm_num_res_blocks": same("idm_num_res_blocks"),
        "idm_head_dim": departure(256, "compute (not ablated)"),
        "idm_use_aug": departure(False, "not ablated: the earlier CPU preset's choice"),
        "idm_arch": departure("stacked", "ours, half the convolution work of the release's `shared` (not ablated)"),
    },
    "idm-bc": {
        **_POLICY,
        "epochs": departure(13, "the acting-policy recipe of BC-full, for the IDM's policy too"),
    },
    "decoder": {
        "batch_size": same("batch_size"),
        "total_updates": same("total_updates"),
        "learning_rate": same("learning_rate"),
        "warmup_epochs": same("warmup_epochs"),
        "hidden_dim": same("hidden_dim"),
        "num_layers": same("num_layers"),
        "checkpoint_every": same("checkpoint_every"),
    },
}


def load_preset(preset: str, stage: str) -> dict[str, Any]:
    """A shipped preset's values as written in its YAML (lists, not tuples), without the
    dataclass defaults the file leaves out: what the rules compare."""
    values = yaml.safe_load(presets_root().joinpath(preset, f"{stage}.yaml").read_text()) or {}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


def derive(stage: str, paper: Values, cpu: Values) -> dict[str, Any]:
    """Every CPU field of ``stage`` recomputed from the paper preset by its rule (the
    departures' values are the rules' own; ``cpu`` supplies them to the share rules)."""
    rules = RULES[stage]
    base = {k: r.derive(paper, cpu) for k, r in rules.items() if r.kind in ("departure", "bookkeeping")}
    merged = {**cpu, **base}
    return {k: r.derive(paper, merged) for k, r in rules.items()}


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "null" if value is None else str(value)


def markdown_table() -> str:
    """README's preset table: field | paper | cpu | rule, for every stage."""
    lines = ["| preset | field | paper | cpu | rule |", "|---|---|---|---|---|"]
    for stage, rules in RULES.items():
        paper = load_preset("paper", stage)
        cpu = load_preset("cpu", stage)
        for field, rule in rules.items():
            if rule.kind == "bookkeeping":
                continue
            lines.append(
                f"| {stage} | {field} | {_show(paper.get(field, '-'))} | {_show(cpu.get(field))} | {rule.text} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m laom.training.presets: print README's table
    print(markdown_table())
