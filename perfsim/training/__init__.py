"""Training steps: forward, backward and optimizer, on one chip or a cluster.

config (TrainConfig) → layout (degrees, micro-batches, each chip's parameters) → costing (the inference trace's
ops with their backward ops from backward, costed per stage) → schedule (1F1B / interleaved pipelines and the
overlap of collectives on the discrete-event engine) → step (TrainingEstimate: step time, tokens/s, MFU, HFU,
memory from memory, optimizer bytes from optimizer, DP traffic from comm); network trains a CNN on one chip;
result is what perfsim.api.train returns.
"""
