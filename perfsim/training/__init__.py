"""Training steps: forward, backward and optimizer, on one chip or a cluster (perfsim.training.step)."""
