"""Continuous batching in the style of vLLM, one simpy event per scheduler iteration.

Each iteration: admit waiting requests (FIFO) while the batch has room and the KV cache
can hold their prompts (allocated on admission, keeping a 1 % watermark free); give every
decoding sequence one token; fill the rest of the token budget with prompt chunks (chunked
prefill) or whole prompts; advance time by the step's cost. A sequence whose prefill
completes emits its first token; decoding ones emit one token per iteration. When the KV
cache is full, the most recently admitted sequence is preempted and later recomputed (its
prompt and generated tokens prefilled again), as vLLM's recompute policy does.

KV capacity is block-granular: a sequence holds ⌈len / block⌉ blocks, budgeted as its
tokens plus one block. Decode sequences finish at iterations known when they start, so an
iteration costs O(log n), not O(batch): a million requests run in bounded memory.
"""

from __future__ import annotations

import heapq
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import simpy

from perfsim.errors import PerfsimError
from perfsim.serving.arrivals import Request
from perfsim.serving.costs import StepCosts

WATERMARK = 0.01  # admit only while 1 % of the KV cache stays free, as vLLM's watermark does


@dataclass(frozen=True)
class SchedulerConfig:
    """Knobs of the continuous-batching scheduler (vLLM's names in brackets)."""

    max_batch: int = 256  # [max_num_seqs]
    max_tokens: int = 8192  # tokens per iteration [max_num_batched_tokens]
    chunked_prefill: bool = True
    block_size: int = 16


@dataclass(eq=False)
class _Seq:
    request: Request
    to_prefill: int  # tokens still to prefill in this admission (prompt, or prompt + generated on recompute)
    kv_tokens: int = 0  # tokens in its KV cache (for a decoding sequence: as of iteration decode_from)
    produced: int = 0  # output tokens emitted so far
    first_token_s: float = -1.0
    decode_from: int = -1  # iteration after which it decodes; -1 while prefilling
    epoch: int = 0  # bumps on preemption, invalidating its finish entry


@dataclass
class ServingResult:
    """Per-request latencies (streamed to `on_finish`), and per-iteration batch sizes."""

    finished: int = 0
    output_tokens: int = 0
    iterations: int = 0
    preemptions: int = 0
    makespan_s: float = 0.0
    times_s: array = field(default_factory=lambda: array("d"))
    batch_sizes: array = field(default_factory=lambda: array("I"))


def serve(requests: Iterator[Request], costs: StepCosts, capacity_tokens: int, config: SchedulerConfig,
          on_finish: Callable[[Request, float, float], None]) -> ServingResult:
    """Run every request to completion; `on_finish(request, first_token_s, end_s)` as each one ends.

    Raise PerfsimError if a single request can never fit the KV cache.
    """
    env = simpy.Environment()
    result = ServingResult()
    env.process(_loop(env, iter(requests), costs, capacity_tokens, config, on_finish, result))
    env.run()
    result.makespan_s = env.now
    return result


def _loop(env, requests, costs, capacity, config, on_finish, result):
    waiting: deque[_Seq] = deque()
    prefilling: list[_Seq] = []
    decoding: dict[int, _Seq] = {}
    finishing: list[tuple[int, int, int]] = []  # (iteration, request id, epoch)
    admitted: list[_Seq] = []  # in admission order, for preemption (newest first out)
    kv_total = 0  # Σ kv tokens of running sequences
    ctx_sum = 0  # Σ kv tokens of decoding sequences
    upcoming = next(requests, None)
    block = config.block_size

    def finish(seq: _Seq) -> None:
        result.finished += 1
        result.output_tokens += seq.request.output_len
        on_finish(seq.request, seq.first_token_s, env.now)

    def release(seq: _Seq) -> None:
        nonlocal kv_total, ctx_sum
        kv_total -= seq.kv_tokens
        if seq.decode_from >= 0:
            ctx_sum -= seq.kv_tokens
            decoding.pop(seq.request.id, None)
        else:
            prefilling.remove(seq)
        admitted.remove(seq)

    while True:
        while upcoming is not None and upcoming.arrival_s <= env.now:
            if upcoming.prompt_len + upcoming.output_len + block > capacity:
                raise PerfsimError(f"request {upcoming.id} ({upcoming.prompt_len} + {upcoming.output_len} tokens) "
                                   f"can never fit the KV cache of {capacity} tokens")
            waiting.append(_Seq(upcoming, upcoming.prompt_len))
            upcoming = next(requests, None)
        running = len(prefilling) + len(decoding)
        while waiting and running < config.max_batch and \
                kv_total + block * (running + 1) + waiting[0].to_prefill <= capacity * (1 - WATERMARK):
            seq = waiting.popleft()
            seq.kv_tokens = seq.to_prefill  # the prompt's blocks are allocated on admission
            kv_total += seq.kv_tokens
            prefilling.append(seq)
            admitted.append(seq)
            running += 1
        if not running:
            if upcoming is None:
                return
            yield env.timeout(upcoming.arrival_s - env.now)
            continue

        budget = config.max_tokens - len(decoding)
        chunks: list[tuple[_Seq, int]] = []
        for seq in prefilling:
            take = min(seq.to_prefill, budget) if config.chunked_prefill else seq.to_prefill
            if take <= 0 or (not config.chunked_prefill and take > budget and chunks):
                break
            chunks.append((seq, take))
            budget -= take
        prefill_tokens = sum(take for _, take in chunks)
        seconds = (costs.decode(len(decoding), ctx_sum / len(decoding)) if decoding else 0.0) + \
            (costs.prefill(prefill_tokens) if prefill_tokens else 0.0)
        yield env.timeout(seconds)
        result.iterations += 1
        it = result.iterations
        result.times_s.append(env.now)
        result.batch_sizes.append(running)

        kv_total += len(decoding)
        ctx_sum += len(decoding)
        while finishing and finishing[0][0] <= it:
            _, rid, epoch = heapq.heappop(finishing)
            seq = decoding.get(rid)
            if seq is not None and seq.epoch == epoch:
                seq.kv_tokens += it - seq.decode_from
                seq.produced = seq.request.output_len
                release(seq)
                finish(seq)
        for seq, take in chunks:
            seq.to_prefill -= take
            if seq.to_prefill:
                continue
            seq.produced += 1  # the step that completes a prefill emits the next token
            if seq.first_token_s < 0:
                seq.first_token_s = env.now
            if seq.produced >= seq.request.output_len:
                release(seq)
                finish(seq)
                continue
            prefilling.remove(seq)
            seq.decode_from = it
            decoding[seq.request.id] = seq
            ctx_sum += seq.kv_tokens
            heapq.heappush(finishing, (it + seq.request.output_len - seq.produced, seq.request.id, seq.epoch))

        while admitted and kv_total + block * (len(prefilling) + len(decoding)) > capacity:
            victim = admitted[-1]
            if victim.decode_from >= 0:
                grown = it - victim.decode_from
                victim.kv_tokens += grown
                victim.produced += grown
            release(victim)
            victim.epoch += 1
            victim.to_prefill = victim.request.prompt_len + victim.produced
            victim.kv_tokens, victim.decode_from = 0, -1
            waiting.appendleft(victim)
            result.preemptions += 1
