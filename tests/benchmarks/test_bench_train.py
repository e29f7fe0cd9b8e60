"""Budget: a training step of a 70B model on 1,024 GPUs (tp 8, pp 8, dp 16, 64 micro-batches) well under 1 s."""

from perfsim.training.config import TrainConfig
from perfsim.training.step import estimate_training

CONFIG = TrainConfig(model="llama-3-70b", hardware="h100-cluster", tp=8, pp=8, micro_batch=1, global_batch=1024,
                     seq_len=4096, recompute="full", zero=1)


def test_llama_3_70b_training_step_on_1024_gpus(benchmark):
    estimate = benchmark(estimate_training, CONFIG)
    assert estimate.layout.micro_batches == 64
    assert benchmark.stats is None or benchmark.stats["mean"] < 0.5
