"""State experts: load the paper's checkpoints and SB3 zips, train new ones, ship small ones.

Every format becomes an :class:`Expert` whose ``act`` is a handful of numpy matmuls,
because data collection calls it once per environment step.
"""

from __future__ import annotations

from laom.experts.builtin import available_builtin, builtin, resolve
from laom.experts.formats import check_task, infer_task, load
from laom.experts.policy import Expert

__all__ = ["Expert", "available_builtin", "builtin", "check_task", "infer_task", "load", "resolve"]
