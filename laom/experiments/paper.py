"""The paper's reported numbers, as data, so reports can draw them beside ours.

Source: Nikulin et al., "Latent Action Learning Requires Supervision in the Presence of
Distractors" (ICML 2025), values read off the figures of the paper and its public
release to +-0.01 (collected in the project's docs/paper-facts.md, section 7). They are
averages over cheetah-run, walker-run, hopper-hop and humanoid-walk with distractors
(scale_easy_video_hard), 3 seeds, 25 evaluation episodes. Keys are our method names.
"""

from __future__ import annotations

from laom import methods

# Labelled-trajectory budgets of the paper's return figures (1000-step chunks).
BUDGETS: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128)

# Normalized return (return / return of BC trained on the full labelled dataset),
# averaged over the four tasks; one value per entry of BUDGETS.
NORMALIZED_RETURN: dict[str, tuple[float, ...]] = {
    "laom-labels": (0.07, 0.095, 0.12, 0.15, 0.23, 0.36, 0.44),
    "laom": (0.08, 0.105, 0.13, 0.13, 0.16, 0.165, 0.185),
    "lapo": (0.045, 0.06, 0.07, 0.08, 0.08, 0.095, 0.10),
    "idm": (0.035, 0.05, 0.065, 0.07, 0.10, 0.14, 0.195),
    "bc": (0.03, 0.045, 0.065, 0.07, 0.10, 0.15, 0.26),
}

# The normaliser: return of BC trained on the full labelled dataset, per task.
BC_FULL_RETURN: dict[str, float] = {
    "cheetah-run": 823.0,
    "walker-run": 749.0,
    "hopper-hop": 253.0,
    "humanoid-walk": 428.0,
}

# Per-task normalized return at 128 labelled trajectories (LAOM+supervision vs BC).
PER_TASK_AT_128: dict[str, dict[str, float]] = {
    "cheetah-run": {"laom-labels": 0.69, "bc": 0.42},
    "walker-run": {"laom-labels": 0.51, "bc": 0.30},
    "hopper-hop": {"laom-labels": 0.36, "bc": 0.21},
    "humanoid-walk": {"laom-labels": 0.18, "bc": 0.11},
}

# Without distractors, normalized return at 128 labelled trajectories.
NO_DISTRACTORS_AT_128: dict[str, float] = {"lapo": 0.42, "laom": 0.47}

# Linear-probe MSE of latent to true actions, with distractors, in the paper's units
# (not comparable in absolute terms with ours: only ratios between methods are).
# The ablation path from LAPO to LAOM, in order.
PROBE_MSE_ABLATION: tuple[tuple[str, float], ...] = (
    ("LAPO+FSQ", 29.17),
    ("LAPO w/o FSQ", 22.09),
    ("+ multi-step IDM", 9.54),
    ("+ latent dim 8192", 3.89),
    ("+ latent FDM", 5.22),
    ("+ augmentations (LAOM)", 2.74),
)
# Our methods' counterparts: lapo uses FSQ in both presets, lapo-nofsq is the second row,
# laom is the last row.
PROBE_MSE: dict[str, float] = {"lapo": 29.17, "lapo-nofsq": 22.09, "laom": 2.74}
PROBE_MSE_NO_DISTRACTORS: dict[str, float] = {"lapo": 16.41, "laom": 1.93}

# How the paper names our methods (figure legends): the method registry's labels, which
# give the paper's names to its methods and ours to the variants it does not have.
LABELS: dict[str, str] = {m.name: m.label for m in methods.METHODS.values()}


def split_variant(method: str) -> tuple[str, str]:
    """``"laom-labels (strong)"`` -> ``("laom-labels", "strong")``; no variant -> ``(method, "")``.
    A report names the runs of a sweep given as ``NAME=DIR`` ``method (NAME)``."""
    if method.endswith(")") and " (" in method:
        base, _, name = method[:-1].partition(" (")
        return base, name
    return method, ""


def label(method: str) -> str:
    """A method's name in a report: the paper's, and a variant's sweep name after it."""
    base, variant = split_variant(method)
    text = LABELS.get(base, base)
    return f"{text} ({variant})" if variant else text
