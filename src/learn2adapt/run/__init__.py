"""The run layer: a run's config and presets, the training loop, the MPC agent and rollouts, run directories, checkpoints and metrics."""
