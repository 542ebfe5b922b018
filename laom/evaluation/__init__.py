"""Online evaluation of pixel policies in the distracting environments."""

from laom.evaluation.online import EvalResult, episode_seed, evaluate, normalized_return

__all__ = ["EvalResult", "episode_seed", "evaluate", "normalized_return"]
