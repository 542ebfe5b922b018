"""Training stages; ``common`` holds what they share (configs, checkpoints, metrics)."""
