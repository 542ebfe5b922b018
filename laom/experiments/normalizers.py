"""The per-task normaliser of a sweep's returns, and its re-application to recorded runs.

With ``--normalizer auto`` (the paper's) a task's normaliser is final only once every
seed's bc-full run has finished, so it is applied to runs.jsonl lines after the fact
rather than being part of a run's key: adding seeds then re-runs no finished work. Until
then a run is recorded as it finishes, divided by the mean of the bc-full seeds finished
so far (none: not normalised yet), and every line is re-normalised when another seed's
bc-full finishes. A finished run is never held back: a sweep's machine may not outlast
the session, and an unwritten record is lost with it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from laom.errors import require
from laom.experiments.runs_store import RunRecord, read_runs

if TYPE_CHECKING:
    from laom.experiments.sweep_config import SweepConfig


SWEEP_NORMALIZER = "sweep:"
# A normalised return divides by BC-full's; below this share of the expert's return
# BC-full is no working normaliser and the quotient says nothing about the method (the
# demo's summary, the report and the README's headline all flag it).
NORMALISER_MIN_SHARE = 0.5


def normaliser_works(bc_full: float, expert: float) -> bool:
    """Whether BC-full's return is a share of the expert's that a quotient can stand on."""
    return bc_full >= NORMALISER_MIN_SHARE * expert


def check_normalizer(text: str) -> str:
    """``auto``, ``paper``, ``none``, a non-zero number or another sweep's directory
    (``sweep:/abs/path``); returned in canonical form. Keywords and numbers win over a
    folder of the same name, so the default never depends on the working directory."""
    raw = str(text).strip()
    if raw.lower() in ("auto", "paper", "none"):
        return raw.lower()
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is not None:
        require(value != 0 and math.isfinite(value), f"--normalizer {raw}: expected a non-zero number")
        return repr(value)
    path = raw.removeprefix(SWEEP_NORMALIZER)
    require(Path(path).is_dir(), f"--normalizer {raw}: expected auto, paper, none, a number or a sweep directory")
    require((Path(path) / "runs.jsonl").is_file(), f"--normalizer {path}: not a sweep directory (no runs.jsonl)")
    return SWEEP_NORMALIZER + str(Path(path).resolve())


def sweep_normalizers(spec: str) -> dict[str, float]:
    """Per task, the normaliser another sweep applied to its runs (its latest line wins)."""
    path = Path(spec.removeprefix(SWEEP_NORMALIZER)) / "runs.jsonl"
    require(path.is_file(), f"--normalizer {path.parent}: no runs.jsonl (not a sweep directory)")
    out: dict[str, float] = {}
    for run in read_runs(path):
        if run.normalizer is not None:
            out[run.task] = float(run.normalizer)
    return out


class Normalizers:
    """Per-task normaliser, known up front (number, paper, none) or once every seed's
    bc-full run has finished (auto)."""

    def __init__(self, cfg: SweepConfig) -> None:
        self.cfg = cfg
        self.bc_full: dict[str, dict[int, float | None]] = {t: {} for t in cfg.tasks}
        # Read once per command: the other sweep's value when this one started (or resumed).
        self.other = sweep_normalizers(cfg.normalizer) if cfg.normalizer.startswith(SWEEP_NORMALIZER) else {}

    def add(self, run: RunRecord) -> None:
        if run.method == "bc-full" and run.task in self.bc_full:
            self.bc_full[run.task][int(run.seed)] = run.return_mean

    def known(self, task: str) -> bool:
        """Whether the normaliser is final (every seed's bc-full finished, for ``auto``)."""
        if self.cfg.normalizer != "auto" or self.cfg.episodes == 0:
            return True
        return set(self.bc_full[task]) >= set(self.cfg.seeds)

    def value(self, task: str) -> float | None:
        """The normaliser (None: not normalised); for ``auto`` before :meth:`known`, the
        mean over the bc-full seeds finished so far (None before the first)."""
        spec = self.cfg.normalizer
        if spec == "none" or self.cfg.episodes == 0:
            return None
        if spec == "paper":
            from laom.experiments.paper import BC_FULL_RETURN

            return BC_FULL_RETURN[task]
        if spec.startswith(SWEEP_NORMALIZER):
            return self.other.get(task)
        if spec != "auto":
            return float(spec)
        finished = self.bc_full[task]
        returns = [finished[s] for s in self.cfg.seeds if s in finished]
        if not returns or any(r is None for r in returns):
            return None
        mean = sum(returns) / len(returns)  # type: ignore[arg-type]
        return mean if abs(mean) > 1e-9 else None

    def apply(self, run: RunRecord) -> RunRecord:
        norm = self.value(run.task)
        run.normalizer = norm
        if norm is not None and run.return_mean is not None:
            run.normalized_return = run.return_mean / norm
            run.normalized_std = run.return_std / abs(norm)
        else:
            run.normalized_return = run.normalized_std = None
        return run


def renormalize(path: Path, norms: Normalizers) -> int:
    """Re-apply the current normaliser (final or so far) to the recorded lines of the
    sweep's tasks; returns how many lines changed (the file is rewritten atomically)."""
    from laom.outputs import atomic_write_text

    if not path.is_file():
        return 0
    lines, changed = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)  # a torn last line: read_runs ignores it, keep it as it was
            continue
        if isinstance(raw, dict) and raw.get("task") in norms.bc_full:
            run = norms.apply(RunRecord.from_json(raw))
            after = {"normalizer": run.normalizer, "normalized_return": run.normalized_return,
                     "normalized_std": run.normalized_std}  # fmt: skip
            if any(raw.get(k) != v for k, v in after.items()):
                changed += 1
                # Only these three keys change, in place (an older line that lacked them
                # gets them at its end): the rest of the line stays as it was written.
                line = json.dumps({**raw, **after}, sort_keys=False)
        lines.append(line)
    if changed:
        atomic_write_text(path, "".join(line + "\n" for line in lines))
    return changed
