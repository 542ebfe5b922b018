"""What each training stage's ``RUN/summary.json`` holds, as records (:mod:`laom.records`).

A stage returns its summary and writes it (:meth:`laom.training.rundir.RunDir.write_summary`);
a finished run returns it read back, so a rerun, the pipeline and the report see one type
whatever laom wrote the file. Field order is the file's key order, the layout every
earlier laom wrote; a file from an older laom lacks some figures (they read as None) and
one from a newer may hold more (kept in ``extra``).

Torch-free: ``laom report`` and the sweep read these without importing a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from laom.records import Record, json_field


@dataclass
class OfflineScores(Record):
    """An acting policy's action MSE on a held-out file beside that of always predicting
    the training actions' mean (``laom.evaluation.policy.offline_action_mse``)."""

    action_mse: float | None = None
    constant_action_mse: float | None = None
    samples: int | None = None
    # the IDM baseline's: its IDM's own MSE, how much of the policy's error it inherits
    idm_action_mse: float | None = json_field(omit_none=True)


@dataclass
class StageSummary(Record):
    """What every stage's summary ends with: the code that wrote it (stamped by
    ``RunDir.write_summary``), so a result can be traced to its commit."""

    laom_version: str | None = json_field(place=2, kw_only=True)
    git_commit: str | None = json_field(place=2, kw_only=True)
    git_dirty: bool | None = json_field(place=2, kw_only=True)
    machine: str | None = json_field(place=2, kw_only=True)  # the CPU (laom.outputs.machine)
    # The stage process's peak resident memory, from the run's start in this invocation
    # (laom.outputs.peak_memory_gb): what decides how many stages fit on a machine at once.
    peak_memory_gb: float | None = json_field(place=2, kw_only=True, omit_none=True)

    def stamp(self, version: dict[str, Any]) -> None:
        """Record ``version`` (``laom.outputs.code_version``, and the machine); a key this
        laom does not name goes to ``extra`` rather than being lost."""
        for name, value in version.items():
            if name in ("laom_version", "git_commit", "git_dirty", "machine", "peak_memory_gb"):
                setattr(self, name, value)
            else:
                self.extra[name] = value


@dataclass
class FitSummary(StageSummary):
    """A pixel regression (``laom.training.bc.fit``): what the acting-policy summaries
    open with, and what the inner runs (RUN/idm/, RUN/bc/) of an IDM baseline run of an
    earlier laom, one stage then, wrote."""

    stage: str | None = None  # set by a run that writes it on its own: "idm", "idm-bc"
    final_loss: float | None = None
    updates: int | None = None
    samples_per_s: float | None = None  # None when a resume found nothing left to train


@dataclass
class LAMSummary(StageSummary):
    """``laom train lam``: the latent action model and its linear probes."""

    method: str = ""
    updates: int | None = None
    epochs: float | None = None
    final: dict[str, float] = json_field(factory=dict)  # the last logged window means
    action_probe_mse: float | None = None
    action_probe_baseline_mse: float | None = None
    action_probe_r2: float | None = None
    state_probe_mse: float | None = None
    state_probe_baseline_mse: float | None = None
    state_probe_r2: float | None = None
    # R² per distractor factor (None for one not recorded); None without records
    distractor_probe_r2: dict[str, float | None] | None = None
    probe_train_samples: int | None = None
    probe_test_samples: int | None = None
    probe_test_set: str | None = None
    online_probe_mse: float | None = None
    online_probe_rel: float | None = None
    samples_per_s: float | None = None
    device: str | None = None
    precision: str | None = None
    threads: int | None = None
    processes: int | None = None
    malloc_mmap_threshold: str | None = None
    lam: str | None = None  # RUN/lam.pt

    @property
    def action_r2(self) -> float | None:
        return action_r2(
            self.action_probe_r2, self.action_probe_mse, self.action_probe_baseline_mse
        )


def action_r2(r2: float | None, mse: float | None, baseline_mse: float | None) -> float | None:
    """The action probe's R², from its MSEs where it was not kept (a summary of an earlier
    laom, a runs.jsonl line)."""
    if r2 is not None:
        return float(r2)
    return 1.0 - float(mse) / float(baseline_mse) if mse is not None and baseline_mse else None


@dataclass
class LatentBCSummary(StageSummary):
    """``laom train bc``: the latent policy, regressing the LAM's latents."""

    stage: str = "bc"
    method: str = ""
    final_loss: float | None = None
    updates: int | None = None
    samples_per_s: float | None = None
    epochs: float | None = None
    latent_dim: int | None = None
    latent_variance: float | None = None  # NaN when the latents were not cached
    relative_loss: float | None = None  # final_loss / latent_variance
    policy_action_probe_r2: float | None = None
    policy_distractor_probe_r2: dict[str, float | None] | None = None
    device: str | None = None
    latent_policy: str | None = None  # RUN/latent_policy.pt


@dataclass
class PolicySummary(StageSummary):
    """A stage whose run holds an acting policy (RUN/policy.pt): its offline action MSE
    on --eval-data comes last, and only when there was an --eval-data."""

    offline: OfflineScores | None = json_field(
        parse=OfflineScores.from_json, omit_none=True, place=1, kw_only=True
    )


@dataclass
class DecoderSummary(PolicySummary):
    """``laom train decoder``: the action decoder on the latent policy."""

    stage: str = "decoder"
    method: str = ""
    updates: int | None = None
    final_loss: float | None = None
    train_action_mse: float | None = None
    labeled_transitions: int | None = None
    labeled_trajectories: int | None = None
    device: str | None = None
    policy: str | None = None  # RUN/policy.pt


@dataclass
class BCBaselineSummary(PolicySummary):
    """``laom train bc-baseline``: BC on true actions (BC, BC-full)."""

    stage: str = "bc-baseline"
    method: str = "bc"
    final_loss: float | None = None
    updates: int | None = None
    samples_per_s: float | None = None
    epochs: float | None = None
    trajectories: int | None = None
    transitions: int | None = None
    device: str | None = None
    policy: str | None = None


@dataclass
class IDMSummary(StageSummary):
    """``laom train idm``: the IDM baseline's inverse dynamics model, trained on the
    labelled subset. What its policy stage (idm-bc) needs of the labelled file is kept
    here, so that stage reads the IDM run alone: how many trajectories it had and the
    mean of its actions (the constant prediction the policy's offline MSE is set against)."""

    stage: str = "idm"
    method: str = "idm"
    final_loss: float | None = None
    updates: int | None = None
    samples_per_s: float | None = None
    labeled_trajectories: int | None = None
    labeled_transitions: int | None = None
    action_mean: list[float] | None = None
    device: str | None = None
    idm: str | None = None  # RUN/idm.pt


@dataclass
class IDMBCSummary(PolicySummary):
    """``laom train idm-bc``: the IDM baseline's policy, BC on the IDM's pseudo-actions,
    with the IDM's figures beside its own. An IDM baseline run of an earlier laom (IDM and
    policy in one stage, ``stage: idm``) wrote this same layout, and loads as it."""

    stage: str = "idm-bc"
    method: str = "idm"
    final_loss: float | None = None
    updates: int | None = None
    samples_per_s: float | None = None
    epochs: float | None = None
    idm_updates: int | None = None
    idm_final_loss: float | None = None
    pseudo_label_mse: float | None = None  # the pseudo-actions against --data's true actions
    labeled_trajectories: int | None = None
    device: str | None = None
    policy: str | None = None


@dataclass
class StageRef(Record):
    """Where a pipeline run's stage lives (``stages`` of the pipeline summary and of a
    runs.jsonl line): its folder, its key, and whether this run reused it."""

    dir: str = ""
    key: str | None = None
    reused: bool = False
