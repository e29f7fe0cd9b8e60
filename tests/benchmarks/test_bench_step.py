"""Budget: one Llama-2-7B decode-step estimate, model and hardware already loaded, under 1 ms."""

from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step


def test_llama_2_7b_decode_step(benchmark):
    resolved = resolve(Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", batch=1, context=2048))
    step = benchmark(estimate_step, resolved)
    assert step.bound == "memory:hbm"
