"""Continuous batching in the style of vLLM, one simpy event per scheduler iteration.

Each iteration: admit waiting requests (FIFO) while the batch has room and the KV cache can
hold their prompts (allocated on admission, keeping a 1 % watermark free); give every
decoding sequence one token; fill the rest of the token budget with prompt chunks (chunked
prefill) or whole prompts; advance time by the cost of one forward pass over all of it. A
sequence whose prefill completes emits its first token; decoding ones emit one token per
iteration. When the KV cache is full, the most recently admitted sequence is preempted and
later recomputed (its prompt and generated tokens prefilled again), as vLLM's recompute
policy does.

An iteration never exceeds its token budget: at most `max_tokens` sequences run at once (each
decoding one needs a token), and without chunked prefill a prompt longer than the budget is an
error on arrival, as vLLM rejects it; a prompt waits until the budget left by decoding holds it.
Only a preempted sequence whose prompt and generated tokens outgrow the budget is recomputed
in budget-sized chunks.

With speculative decoding a decoding sequence gains `tokens_per_step` tokens per iteration
in expectation, and finishes after ⌈remaining / tokens_per_step⌉ iterations. With
prefill/decode disaggregation a prefill-only server hands each prefilled sequence (its
first token emitted) to a decode server after the KV transfer.

Schedulers (`SchedulerConfig.policy`): `vllm` is the loop above, chunked or not; `sarathi` is Sarathi-Serve's
stall-free batching, the same loop with chunked prefill always on (`max_tokens` is its token budget); `orca` is
Orca's iteration-level scheduling with selective batching: whole prompts join running decodes, and each request
reserves KV for its prompt and all its output on admission (so it is never preempted); `static` batches as the
classic TensorRT-LLM benchmark tables do: a batch forms only when the previous one has finished, reserves as
`orca` does, and every iteration costs its formed size (finished sequences keep their padded slots) until the
last one ends.

With a prefix cache, a new request whose conversation (or prefix id) is cached prefills only the rest of its
prompt (at least one token) and attends over the cached tokens; a prefill that completes caches its prefix, a
finished turn its conversation. With a host tier, preemption may swap (`preemption="swap"`): the victim's KV
goes to host memory and comes back on re-admission instead of being recomputed; host moves stall the next
iteration (perfsim.serving.kv_tiers).

KV capacity is block-granular: a sequence holds ⌈len / block⌉ blocks, budgeted as its
tokens plus one block. Decode sequences finish at iterations known when they start, so an
iteration costs O(log n), not O(batch): a million requests run in bounded memory.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import simpy

from perfsim.errors import PerfsimError
from perfsim.serving.arrivals import Request
from perfsim.serving.costs import StepCosts
from perfsim.serving.kv_tiers import HostTier
from perfsim.serving.prefix_cache import PrefixCache

WATERMARK = 0.01  # admit only while 1 % of the KV cache stays free, as vLLM's watermark does


@dataclass(frozen=True)
class SchedulerConfig:
    """Knobs of the continuous-batching scheduler (vLLM's names in brackets)."""

    max_batch: int = 256  # [max_num_seqs]
    max_tokens: int = 8192  # tokens per iteration [max_num_batched_tokens]
    chunked_prefill: bool = True
    block_size: int = 16
    tokens_per_step: float = 1.0  # expected tokens a decoding sequence gains per iteration (speculation: > 1)
    policy: str = "vllm"  # vllm, sarathi, orca, static (see the module doc)
    preemption: str = "recompute"  # or swap (needs a host tier)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise PerfsimError(f"--scheduler: unknown scheduler '{self.policy}' (known: {', '.join(POLICIES)})")
        if self.preemption not in PREEMPTIONS:
            raise PerfsimError(f"--preemption: '{self.preemption}' is not one of {', '.join(PREEMPTIONS)}")
        if self.policy == "sarathi" and not self.chunked_prefill:
            raise PerfsimError("--scheduler sarathi is chunked prefill; it cannot run with --no-chunked-prefill")

    @property
    def chunks(self) -> bool:
        """Whether prompts are split into chunks across iterations."""
        return self.policy == "sarathi" or (self.policy == "vllm" and self.chunked_prefill)

    @property
    def reserves(self) -> bool:
        """Whether a request reserves KV for its whole output on admission."""
        return self.policy in ("orca", "static")


POLICIES = ("vllm", "sarathi", "orca", "static")
PREEMPTIONS = ("recompute", "swap")


@dataclass(eq=False)
class Sequence:
    """A request in flight. `kv_tokens` of a decoding sequence is as of iteration `decode_from`."""

    request: Request
    to_prefill: int
    kv_tokens: float = 0
    produced: int = 0
    first_token_s: float = -1.0
    decode_from: int = -1
    epoch: int = 0  # bumps on preemption, invalidating its finish entry
    shared: int = 0  # prompt tokens read from the prefix cache (not in kv_tokens)
    swapped: float = 0.0  # KV tokens waiting in host memory after a swap
    promise: float = 0.0  # KV tokens reserved on admission (orca, static)
    queued: bool = True  # not yet admitted once (counted in its server's queued_tokens)


@dataclass
class ServingResult:
    """Totals over the run; per iteration its end time and duration, the sequences it ran, the requests left waiting
    (not admitted) and the KV tokens in use (allocated prompts and decoded tokens) while it ran."""

    finished: int = 0
    output_tokens: int = 0
    iterations: int = 0
    preemptions: int = 0
    makespan_s: float = 0.0
    kv_capacity_tokens: int = 0
    busy_energy_j: float = 0.0  # joules of the chips' ops over all iterations (NaN when a chip's energy is unknown)
    busy_chip_s: float = 0.0  # chip-seconds those ops kept chips busy
    times_s: array = field(default_factory=lambda: array("d"))
    durations_s: array = field(default_factory=lambda: array("d"))
    batch_sizes: array = field(default_factory=lambda: array("I"))
    queue_depths: array = field(default_factory=lambda: array("I"))
    kv_tokens: array = field(default_factory=lambda: array("d"))
    swaps: int = 0  # preemptions that swapped to host memory (of `preemptions`)
    busy_s: float = 0.0  # Σ iteration durations
    batch_s: float = 0.0  # Σ batch · duration over iterations
    keep_records: bool = True  # False: no per-iteration arrays (a fleet keeps them for its first replica only)
    host_transfer_s: float = 0.0  # seconds iterations stalled on host-memory moves


class Arrivals:
    """An inbox fed by a request iterator (Poisson or a trace)."""

    def __init__(self, env: simpy.Environment, requests: Iterator[Request]) -> None:
        self.env, self.requests = env, requests
        self.upcoming = next(requests, None)

    def take(self) -> list[Sequence]:
        ready = []
        while self.upcoming is not None and self.upcoming.arrival_s <= self.env.now:
            ready.append(Sequence(self.upcoming, self.upcoming.prompt_len))
            self.upcoming = next(self.requests, None)
        return ready

    def wait(self) -> simpy.Event | None:
        """An event for the next arrival; None when no request will come."""
        return None if self.upcoming is None else self.env.timeout(self.upcoming.arrival_s - self.env.now)


class Handoffs:
    """An inbox fed by another server (disaggregated prefill); `closed` once that server is done."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.ready: deque[Sequence] = deque()
        self.closed = False
        self.signal = env.event()

    def put(self, seq: Sequence) -> None:
        self.ready.append(seq)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if not self.signal.triggered:
            self.signal.succeed()

    def take(self) -> list[Sequence]:
        ready = list(self.ready)
        self.ready.clear()
        return ready

    def wait(self) -> simpy.Event | None:
        if self.closed and not self.ready:
            return None
        if self.signal.triggered:
            self.signal = self.env.event()
        return self.signal


class Server:
    """One serving instance: a scheduler over its chips' KV cache. `handoff` makes it prefill-only."""

    def __init__(self, env: simpy.Environment, inbox: Arrivals | Handoffs, costs: StepCosts, capacity: int,
                 config: SchedulerConfig, on_finish: Callable[[Request, float, float], None], result: ServingResult,
                 handoff: Callable[[Sequence], None] | None = None, cache: PrefixCache | None = None,
                 host: HostTier | None = None) -> None:
        self.env, self.inbox, self.costs, self.capacity, self.config = env, inbox, costs, capacity, config
        self.on_finish, self.result, self.handoff = on_finish, result, handoff
        self.cache, self.host = cache, host
        self.transfer_s = 0.0  # host moves the next iteration waits for
        self.queued_tokens = 0  # prompt tokens routed here and not yet admitted (for a router)
        self.promised = 0.0  # Σ promise of running sequences
        self.slots = 0  # a static batch's formed size
        self.waiting: deque[Sequence] = deque()
        self.prefilling: list[Sequence] = []
        self.decoding: dict[int, Sequence] = {}
        self.finishing: list[tuple[int, int, int]] = []  # (iteration, request id, epoch)
        self.admitted: list[Sequence] = []  # admission order: the newest is preempted first
        self.kv_total = 0.0  # Σ kv tokens of running sequences
        self.ctx_sum = 0.0  # Σ kv tokens of decoding sequences
        self.iteration = 0

    @property
    def running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def run(self):
        """The scheduler process: one simpy timeout per iteration."""
        while True:
            self._receive()
            self._admit()
            if not self.running:
                event = self.inbox.wait()
                if event is None:
                    return
                yield event
                continue
            chunks = self._plan()
            decoding = len(self.decoding)
            padded = max(decoding, self.slots - len(self.prefilling)) if decoding and self.slots else decoding
            cost = self.costs.iteration(padded, self.ctx_sum / decoding if decoding else 0.0,
                                        [(take, seq.kv_tokens + seq.shared - seq.to_prefill) for seq, take in chunks])
            seconds = cost.seconds + self.transfer_s
            self.result.host_transfer_s += self.transfer_s
            self.transfer_s = 0.0
            batch, waiting, kv_tokens = self.running, len(self.waiting), self.kv_total
            yield self.env.timeout(seconds)
            self.iteration += 1
            result = self.result
            result.iterations += 1
            result.busy_energy_j += cost.energy_j
            result.busy_chip_s += cost.busy_chip_s
            result.busy_s += seconds
            result.batch_s += batch * seconds
            if result.keep_records:
                result.times_s.append(self.env.now)
                result.durations_s.append(seconds)
                result.batch_sizes.append(batch)
                result.queue_depths.append(waiting)
                result.kv_tokens.append(kv_tokens)
            self._advance(chunks)
            self._preempt()

    def _receive(self) -> None:
        block, budget = self.config.block_size, self.config.max_tokens
        for seq in self.inbox.take():
            request = seq.request
            if request.prompt_len + request.output_len + block > self.capacity:
                raise PerfsimError(f"request {request.id} ({request.prompt_len} + {request.output_len} tokens) "
                                   f"can never fit the KV cache of {self.capacity} tokens")
            if seq.to_prefill > budget and not self.config.chunks:
                raise PerfsimError(f"request {request.id}: a prompt of {seq.to_prefill} tokens exceeds the budget of "
                                   f"{budget} tokens per iteration (--max-tokens) without chunked prefill")
            self.waiting.append(seq)

    def _admit(self) -> None:
        limit = self.capacity * (1 - WATERMARK)
        config = self.config
        block = config.block_size
        if config.policy == "static":
            if self.running:
                return
            self.slots = 0
        while self.waiting and self.running < min(config.max_batch, config.max_tokens):
            seq = self.waiting[0]
            if seq.queued and self.cache is not None and seq.to_prefill == seq.request.prompt_len:
                self._lookup(seq)
            need = seq.to_prefill or seq.request.prompt_len + seq.produced
            if config.reserves:
                promise = need + seq.request.output_len - seq.produced
                if self.promised + block * (self.running + 1) + promise > limit:
                    break
                seq.promise = promise
                self.promised += promise
            elif self.kv_total + block * (self.running + 1) + need > limit:
                break
            self.waiting.popleft()
            if seq.queued:
                seq.queued = False
                self.queued_tokens -= seq.request.prompt_len
            if seq.swapped:
                self.transfer_s += self.host.swap_in(seq.swapped)  # type: ignore[union-attr]
                seq.swapped = 0.0
            seq.kv_tokens = need  # the prompt's blocks (or the handed-over cache) are allocated on admission
            self.kv_total += need
            self.admitted.append(seq)
            if seq.to_prefill:
                self.prefilling.append(seq)
            else:
                self._start_decoding(seq)
        if config.policy == "static":
            self.slots = self.running

    def _lookup(self, seq: Sequence) -> None:
        """Read a new request's conversation (or else its prefix) from the prefix cache: at least one prompt token is
        left to prefill; a hit from the host tier stalls the next iteration for the fetch."""
        request, cache = seq.request, self.cache
        assert cache is not None
        keys = [(kind, key) for kind, key in (("conversation", request.conversation_id), ("prefix", request.prefix_id))
                if key is not None]
        if not keys:
            return
        key = next((key for key in keys if cache.peek(key)), keys[-1])
        tokens, seconds = cache.lookup(key)
        limit = request.prefix_len if key[0] == "prefix" else request.prompt_len
        seq.shared = min(tokens, limit, request.prompt_len - 1)
        seq.to_prefill = request.prompt_len - seq.shared
        self.transfer_s += seconds

    def _plan(self) -> list[tuple[Sequence, int]]:
        """Prompt chunks (sequence, tokens) for the budget the decoding sequences leave, FIFO."""
        budget = self.config.max_tokens - len(self.decoding)
        chunks: list[tuple[Sequence, int]] = []
        for seq in self.prefilling:
            whole = not self.config.chunks and seq.to_prefill <= self.config.max_tokens
            take = min(seq.to_prefill, budget)
            if take <= 0 or (whole and take < seq.to_prefill):
                break
            chunks.append((seq, take))
            budget -= take
        return chunks

    def _start_decoding(self, seq: Sequence) -> None:
        seq.decode_from = self.iteration
        self.decoding[seq.request.id] = seq
        self.ctx_sum += seq.kv_tokens + seq.shared
        steps = math.ceil((seq.request.output_len - seq.produced) / self.config.tokens_per_step)
        heapq.heappush(self.finishing, (self.iteration + steps, seq.request.id, seq.epoch))

    def _advance(self, chunks: list[tuple[Sequence, int]]) -> None:
        gain = self.config.tokens_per_step
        growth = len(self.decoding) * gain
        self.kv_total += growth
        self.ctx_sum += growth
        while self.finishing and self.finishing[0][0] <= self.iteration:
            _, rid, epoch = heapq.heappop(self.finishing)
            seq = self.decoding.get(rid)
            if seq is not None and seq.epoch == epoch:
                seq.kv_tokens += (self.iteration - seq.decode_from) * gain
                seq.produced = seq.request.output_len
                self._release(seq)
                self._finish(seq)
        for seq, take in chunks:
            seq.to_prefill -= take
            if seq.to_prefill:
                continue
            seq.produced += 1  # the step that completes a prefill emits the next token
            if seq.first_token_s < 0:
                seq.first_token_s = self.env.now
            request = seq.request
            if self.cache is not None and request.prefix_id is not None and request.prefix_len:
                self.transfer_s += self.cache.insert(("prefix", request.prefix_id), request.prefix_len)
            if seq.produced >= seq.request.output_len:
                self._release(seq)
                self._finish(seq)
            elif self.handoff is not None:
                self._release(seq)
                self.handoff(seq)
            else:
                self.prefilling.remove(seq)
                self._start_decoding(seq)

    def _preempt(self) -> None:
        block = self.config.block_size
        while self.admitted and self.kv_total + block * self.running > self.capacity:
            victim = self.admitted[-1]
            decoding = victim.decode_from >= 0
            if decoding:
                grown = (self.iteration - victim.decode_from) * self.config.tokens_per_step
                victim.kv_tokens += grown
                victim.produced = min(victim.request.output_len - 1, victim.produced + math.floor(grown))
            held = victim.kv_tokens + victim.shared
            self._release(victim)
            victim.epoch += 1
            victim.shared = 0
            victim.to_prefill = victim.request.prompt_len + victim.produced
            if decoding and self.config.preemption == "swap" and self.host is not None:
                seconds = self.host.swap_out(held)
                if seconds is not None:  # the cache waits in host memory; re-admission fetches it, no prefill
                    self.transfer_s += seconds
                    victim.swapped, victim.to_prefill = held, 0
                    self.result.swaps += 1
            self.waiting.appendleft(victim)
            self.result.preemptions += 1

    def _release(self, seq: Sequence) -> None:
        self.kv_total -= seq.kv_tokens
        self.promised -= seq.promise
        seq.promise = 0.0
        if seq.decode_from >= 0:
            self.ctx_sum -= seq.kv_tokens + seq.shared
            del self.decoding[seq.request.id]
        else:
            self.prefilling.remove(seq)
        self.admitted.remove(seq)
        seq.kv_tokens, seq.decode_from = 0, -1

    def _finish(self, seq: Sequence) -> None:
        request = seq.request
        if self.cache is not None and request.conversation_id is not None:  # the next turn starts with all of it
            self.transfer_s += self.cache.insert(("conversation", request.conversation_id),
                                                 request.prompt_len + request.output_len)
        self.result.finished += 1
        self.result.output_tokens += seq.request.output_len
        self.on_finish(seq.request, seq.first_token_s, self.env.now)


@dataclass(frozen=True)
class Disaggregation:
    """Prefill on its own chips: `costs` and `capacity` of the prefill group, and the KV hand-over time."""

    costs: StepCosts
    capacity: int
    transfer_s_per_token: float


def serve(requests: Iterator[Request], costs: StepCosts, capacity_tokens: int, config: SchedulerConfig,
          on_finish: Callable[[Request, float, float], None],
          disaggregation: Disaggregation | None = None, cache: PrefixCache | None = None,
          host: HostTier | None = None) -> ServingResult:
    """Run every request to completion; `on_finish(request, first_token_s, end_s)` as each one ends.

    With `disaggregation`, a prefill server feeds this (decode) server after each sequence's
    KV transfer. `cache` and `host` are the (decode) server's prefix cache and host KV tier.
    Raise PerfsimError if a single request can never fit the KV cache.
    """
    env = simpy.Environment()
    result = ServingResult(kv_capacity_tokens=capacity_tokens)
    arrivals = Arrivals(env, iter(requests))
    if disaggregation is None:
        env.process(Server(env, arrivals, costs, capacity_tokens, config, on_finish, result, cache=cache,
                           host=host).run())
    else:
        handoffs = Handoffs(env)
        state = {"in_flight": 0, "prefill_done": False}

        def transfer(seq: Sequence):
            state["in_flight"] += 1
            yield env.timeout(disaggregation.transfer_s_per_token * (seq.request.prompt_len + seq.produced))
            handoffs.put(seq)
            state["in_flight"] -= 1
            if state["prefill_done"] and not state["in_flight"]:
                handoffs.close()

        prefill = Server(env, arrivals, disaggregation.costs, disaggregation.capacity, config, on_finish, result,
                         handoff=lambda seq: env.process(transfer(seq)))

        def prefill_then_close():
            yield env.process(prefill.run())
            state["prefill_done"] = True
            if not state["in_flight"]:
                handoffs.close()

        env.process(prefill_then_close())
        env.process(Server(env, handoffs, costs, capacity_tokens, config, on_finish, result, cache=cache,
                           host=host).run())
    env.run()
    result.makespan_s = env.now
    return result
