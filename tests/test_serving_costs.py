"""Serving iterations as one forward pass: chunked prefill over its prefix, mixed iterations, exact decode batches,
KV capacity, the token budget and the per-iteration record — each checked against a derivation."""

from dataclasses import replace

import pytest

from perfsim.cost import cost
from perfsim.hardware import load_hardware
from perfsim.models import load_model, total_params
from perfsim.models.params import embedding_params
from perfsim.models.scenario import Piece, Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.ops import Attention
from perfsim.serving.arrivals import Request
from perfsim.serving.costs import StepCosts, busiest_share, grid, kv_capacity_tokens
from perfsim.serving.report import Recorder
from perfsim.serving.scheduler import SchedulerConfig, serve

A100 = Scenario(model="llama-2-7b", hardware="a100-sxm-80gb")
QWEN = Scenario(model="qwen2-72b", hardware="mi300x-node", tp=8)  # max_context 131,072
A100_HBM = 2.039e12  # B/s, the datasheet bandwidth: no step reads memory faster
KV_PER_TOKEN = 2 * 32 * 4096 * 2  # llama-2-7b: K and V × 32 layers × 4096 wide × bf16 = 524,288 B


def _exact(scenario: Scenario, **update) -> float:
    return estimate_step(scenario.model_copy(update=update), check_memory=False).step_s


def _pass(scenario: Scenario, *pieces: Piece) -> float:
    """The step estimate of one replica's forward pass over `pieces`."""
    return estimate_step(replace(resolve(scenario), mix=pieces), check_memory=False).step_s


def _prompt_attention(hardware: str, prompts: int):
    """The fused attention kernel of one llama-2-7b layer over `prompts` fresh 512-token prompts (32 heads of 128)."""
    op = Attention(name="attention", batch=prompts, heads=32, kv_heads=32, head_dim=128, q_len=512, kv_len=512,
                   causal=True, fused=True, dtype="bf16")
    return cost(op, load_hardware(hardware))


def _serve(requests, base=A100, config=None, capacity=None, costs=None):
    config = config or SchedulerConfig()
    costs = costs or StepCosts(base)
    recorder = Recorder(None, None)
    capacity = capacity or kv_capacity_tokens(base, config.max_tokens)[0]
    return serve(iter(requests), costs, capacity, config, recorder), recorder


def test_grid_points():
    assert grid(9) == (9, 9) and grid(3.5) == (3, 4)  # every integer up to 16
    assert grid(19) == (18, 20) and grid(3000) == (2816, 3072)  # then eight per octave: steps of 2, then 256


def test_sixteen_short_prompts_in_one_chunk_cost_a_batch_16_prefill():
    # 16 × 512 = 8,192 tokens fill the default budget: one pass, 16 prompts each attending over its own 512 tokens
    # — the batch-16 prefill's GEMMs (8,192 tokens) and head (16 rows), but 16 attention kernels instead of one
    result, rec = _serve([Request(i, 0.0, 512, 2) for i in range(16)])
    batch_16 = _exact(A100, phase="prefill", batch=16, prompt_len=512)
    assert rec.ttft == pytest.approx([rec.ttft[0]] * 16) and result.iterations == 2
    assert rec.ttft[0] == pytest.approx(_pass(A100, *[Piece(1, 512, 0)] * 16), rel=1e-9)
    assert rec.ttft[0] == pytest.approx(batch_16, rel=0.10)  # issue 11, defect 2
    # A100: 108 SMs, query tiles of 128 rows, KV tiles of 64 keys. One prompt: 32 heads × 4 query tiles = 128 units,
    # 2 waves; causal, query tile i visits 2(i + 1) KV tiles: 2 + 4 + 6 + 8 = 20, so max(2 × 20 / 4, 8) = 10 tile
    # times. Batched: 2,048 units in ⌈2,048 / 108⌉ = 19 waves: max(19 × 5, 8) = 95 tile times, not 16 × 10 = 160
    one, batched = _prompt_attention("a100-sxm-80gb", 1), _prompt_attention("a100-sxm-80gb", 16)
    assert one.resource_s["compute:bf16"] / batched.resource_s["compute:bf16"] == pytest.approx(10 / 95)
    # the difference is those 16 kernels against one, in each of the 32 layers
    assert rec.ttft[0] - batch_16 == pytest.approx(32 * (16 * one.time_s - batched.time_s), rel=1e-6)
    assert rec.ttft[0] < StepCosts(A100).prefill(8192)  # not one 8,192-token prompt (16× the attention pairs)


def test_packed_prompts_on_data_parallel_replicas():
    # dgx-h100 with llama-2-7b: 8 replicas; the busiest holds 2 of the 16 prompts, as a batch-16 prefill does
    base = A100.model_copy(update={"hardware": "dgx-h100"})
    prompts = StepCosts(base).iteration(0, 0.0, [(512, 0)] * 16).seconds
    batch_16 = _exact(base, phase="prefill", batch=16, prompt_len=512)
    assert prompts == pytest.approx(batch_16, rel=0.10)
    # H100: 132 SMs, 128 × 128 attention tiles. One prompt: 32 heads × 4 query tiles = 128 units in one wave, the
    # last query tile visiting 4 KV tiles: max(1 × 10 / 4, 4) = 4 tile times; two prompts in one kernel: 256 units,
    # 2 waves, max(2 × 10 / 4, 4) = 5 tile times. The pass runs two one-prompt kernels per layer, the batch one
    one, two = _prompt_attention("dgx-h100", 1), _prompt_attention("dgx-h100", 2)
    assert one.resource_s["compute:bf16"] / two.resource_s["compute:bf16"] == pytest.approx(4 / 5)
    assert prompts - batch_16 == pytest.approx(32 * (2 * one.time_s - two.time_s), rel=1e-6)


def test_a_prompt_is_not_split_across_data_parallel_replicas():
    # dealt largest first to the replica with the fewest tokens: 2,000 → r0; 500, 500, 400 → r1 (1,400 tokens)
    assert busiest_share([(500, 0), (2000, 0), (400, 0), (500, 0)], 2) == [(2000, 0)]
    # a lone 2,000-token prompt on 8 replicas takes as long as on one chip of them
    base = A100.model_copy(update={"hardware": "dgx-h100"})
    alone = _exact(base, devices=1, phase="prefill", prompt_len=2000)
    assert StepCosts(base).prefill(2000) == pytest.approx(alone, rel=1e-9)  # each token count costed exactly


def test_a_later_chunk_is_a_prefill_over_its_cached_prefix():
    # the second 2,048-token chunk of a prompt: 2,048 new tokens over 2,048 cached = estimate --context 2048
    second = StepCosts(A100).iteration(0, 0.0, [(2048, 2048)]).seconds
    assert second == pytest.approx(_exact(A100, phase="prefill", prompt_len=2048, context=2048), rel=1e-9)
    assert second > StepCosts(A100).prefill(2048)  # 2,048² more query-key pairs per head than a fresh prompt


def test_a_130k_prompt_chunked_costs_about_its_unchunked_prefill():
    # ⌈130,000 / 8,192⌉ = 16 chunks, chunk i over the i · 8,192 tokens before it: Σ pairs = 130,000 · 130,001 / 2,
    # as unchunked; each chunk also re-reads the weights and its prefix's KV, so chunked is a little slower
    result, rec = _serve([Request(0, 0.0, 130_000, 2)], base=QWEN)
    assert result.iterations == 16 + 1
    unchunked = _exact(QWEN, phase="prefill", prompt_len=130_000)
    assert 1.0 <= rec.ttft[0] / unchunked <= 1.2


def test_context_bucket_stays_within_max_context():
    # 131,000 prompt tokens on a 131,072-token model: decode at context 131,001 rounds up to 131,071, not 131,072
    costs = StepCosts(QWEN)
    assert costs.decode(1, 131_001) == pytest.approx(_exact(QWEN, context=131_071), rel=1e-9)
    result, rec = _serve([Request(0, 0.0, 131_000, 2)], base=QWEN, costs=costs)
    assert result.finished == 1 and rec.ttft[0] > 0


def test_decode_cost_is_exact_in_batch():
    costs = StepCosts(A100)
    # every batch is costed at itself: batch 9, and batch 19 where GEMM tiles make the cost a staircase in the batch
    assert costs.decode(9, 3072) == pytest.approx(_exact(A100, batch=9, context=3072), rel=1e-9)
    assert costs.decode(19, 3072) == pytest.approx(_exact(A100, batch=19, context=3072), rel=1e-9)
    # the old bucket (batch 16) read 7 more sequences' caches: 7 × 3,073 × 524,288 B ≥ 5.5 ms at 2.039 TB/s
    assert costs.decode(16, 3072) - costs.decode(9, 3072) >= 7 * 3073 * KV_PER_TOKEN / A100_HBM


@pytest.mark.parametrize("chunks, decoding, context", [
    ([(512, 0), (1024, 2048)], 16, 1024.0),  # 1,552 tokens: 7 tile rows of 256 (6 at 1,536), between old grid points
    ([(512, 0)] * 3 + [(700, 1000)], 19, 3000.0),  # a piece thrice; 1,000 and 3,000 cached round up to 1,024, 3,072
    ([], 200, 500.0),
])
def test_an_analytic_pass_is_the_step_estimate_of_its_pieces(chunks, decoding, context):
    # body, head and attention memoised exactly by tokens, sequences and piece: the pass is the step estimate
    # of the same pieces, cached tokens rounded up to a multiple of 128
    pieces = [Piece(1, new, -(-cached // 128) * 128) for new, cached in chunks]
    pieces.append(Piece(decoding, 1, -(-int(context) // 128) * 128))
    got = StepCosts(A100).iteration(decoding, context, chunks)
    assert got.seconds == pytest.approx(_pass(A100, *pieces), rel=1e-9)
    step = estimate_step(replace(resolve(A100), mix=tuple(pieces)), check_memory=False)
    assert got.energy_j == pytest.approx(step.energy_j, rel=1e-9)  # one chip, never waiting: all of it is its ops'


def test_a_pass_reuses_the_parts_of_other_passes():
    # 1 prompt of 512 over nothing and 9 sequences decoding at 3,072: T = 521 tokens, S = 10 sequences. Passes over
    # 521 tokens of one prompt, over 10 fresh sequences, and over each piece alone hold every part it needs
    costs = StepCosts(A100)
    for chunks, decoding, context in [([(521, 0)], 0, 0.0), ([], 10, 0.0), ([(512, 0)], 0, 0.0), ([], 9, 3072.0)]:
        costs.iteration(decoding, context, chunks)
    evaluations = costs.evaluations
    mixed = costs.iteration(9, 3072.0, [(512, 0)]).seconds
    assert costs.evaluations == evaluations == 4
    assert mixed == pytest.approx(_pass(A100, Piece(1, 512, 0), Piece(9, 1, 3072)), rel=1e-9)


def test_a_mixed_iteration_is_one_forward_pass():
    # 32 sequences decoding at context 1,024 and a fresh 2,048-token prompt, in one pass over 2,080 tokens
    costs = StepCosts(A100)
    mixed = costs.iteration(32, 1024.0, [(2048, 0)]).seconds
    assert mixed == pytest.approx(_pass(A100, Piece(1, 2048, 0), Piece(32, 1, 1024)), rel=1e-9)
    # apart, the weights are read twice. With a 2,016-token prompt the pass holds 2,048 tokens: 8 tile rows of 256,
    # as 2,016 alone, so its GEMMs run the same tiles in the same waves and the decode adds only its attention, its
    # head row and 32 rows of the memory-bound norms and activations; the decode pass alone reads every weight
    # again, at least one read at the datasheet bandwidth
    apart = costs.decode(32, 1024.0) + costs.prefill(2016)
    mixed = costs.iteration(32, 1024.0, [(2016, 0)]).seconds
    model = load_model("llama-2-7b")
    streamed = (total_params(model) - embedding_params(model)) * 2  # bf16; the embedding is gathered, not streamed
    assert apart - mixed >= streamed / A100_HBM


def test_des_costs_a_single_chip_pass_as_the_analytic_sum():
    # one chip runs its ops one after another: the simulated pass is the sum, at grid points (16 sequences, 512 and
    # 1,024 new tokens, 0, 1,024 and 2,048 cached)
    chunks = [(512, 0), (1024, 2048)]
    des, analytic = StepCosts(A100, "des"), StepCosts(A100)
    assert des.iteration(16, 1024.0, chunks) == pytest.approx(analytic.iteration(16, 1024.0, chunks), rel=1e-9)
    # off the grid the DES rounds up: 19 sequences and 1,000 new tokens run as 20 and 1,024 (steps of 2 and 128)
    assert des.iteration(19, 1024.0, [(1000, 0)]) == pytest.approx(analytic.iteration(20, 1024.0, [(1024, 0)]),
                                                                   rel=1e-9)


def test_kv_capacity_keeps_the_engine_reserve():
    # A100 80 GiB = 85,899,345,920 B; llama-2-7b weights 6,738,415,616 × 2 B = 13,476,831,232 B; a prefill chunk of
    # 8,192 tokens holds 8,192 × (4 · 4,096 + 3 · 11,008) × 2 B = 809,500,672 B of activations
    weights, activations = 13_476_831_232, 809_500_672
    # 0.9 × 85,899,345,920 = 77,309,411,328 B usable → ⌊63,023,079,424 / 524,288⌋ = 120,206 tokens
    assert kv_capacity_tokens(A100, 8192)[0] == (77_309_411_328 - weights - activations) // KV_PER_TOKEN == 120_206
    full = A100.model_copy(update={"memory_utilization": 1.0})
    assert kv_capacity_tokens(full, 8192)[0] == (85_899_345_920 - weights - activations) // KV_PER_TOKEN == 136_590


def test_a_prompt_over_the_budget_without_chunking_is_refused(cli):
    result = cli("serve", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--requests", "3", "--max-tokens",
                 "16", "--no-chunked-prefill")
    assert result.code == 2
    assert result.err.strip().splitlines() == ["perfsim: error: request 0: a prompt of 512 tokens exceeds the budget "
                                               "of 16 tokens per iteration (--max-tokens) without chunked prefill"]


def _logged(costs: StepCosts) -> list[tuple[int, list[int]]]:
    """Record each iteration's (decoding sequences, prompt tokens per chunk)."""
    log, iteration = [], costs.iteration

    def spy(decoding, context, chunks):
        log.append((decoding, [new for new, _ in chunks]))
        return iteration(decoding, context, chunks)

    costs.iteration = spy
    return log


@pytest.mark.parametrize("chunked", [True, False])
def test_no_iteration_exceeds_its_token_budget(chunked):
    # 20 prompts of 40 tokens, budget 64: decoding sequences take a token each, whole prompts wait for room
    costs = StepCosts(A100)
    log = _logged(costs)
    config = SchedulerConfig(max_tokens=64, chunked_prefill=chunked)
    result, _ = _serve([Request(i, 0.0, 40, 30) for i in range(20)], config=config, costs=costs)
    assert result.finished == 20
    assert max(decoding + sum(chunks) for decoding, chunks in log) <= 64
    assert max(result.batch_sizes) <= 64
    if not chunked:
        assert all(chunk == 40 for _, chunks in log for chunk in chunks)  # whole prompts only


def test_running_sequences_are_capped_by_the_budget():
    # budget 16 < max_batch 256: at most 16 sequences run, each decoding one needing a token of the budget
    result, _ = _serve([Request(i, 0.0, 8, 20) for i in range(40)], config=SchedulerConfig(max_tokens=16))
    assert max(result.batch_sizes) == 16 and result.finished == 40


def test_queue_depth_and_kv_tokens_per_iteration():
    # max_batch 1, three requests of 100 + 3 tokens at t = 0; each runs 3 iterations (prefill, 2 decodes):
    # waiting 2, 2, 2 while the first runs, then 1, 1, 1 and 0, 0, 0; each holds its 100-token prompt from
    # admission and gains a token per decode step, released when it finishes
    result, _ = _serve([Request(i, 0.0, 100, 3) for i in range(3)], config=SchedulerConfig(max_batch=1),
                       capacity=10_000)
    assert list(result.queue_depths) == [2, 2, 2, 1, 1, 1, 0, 0, 0]
    assert list(result.kv_tokens) == [100.0, 100.0, 101.0] * 3
    assert result.kv_capacity_tokens == 10_000
    assert len(result.times_s) == len(result.batch_sizes) == 9

