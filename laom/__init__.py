"""laom: latent action learning from video in the presence of distractors."""

__version__ = "0.1.0"
