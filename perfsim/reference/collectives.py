"""Ring collectives over simulated ranks, checked against direct sums and the alpha-beta model.

Every rank holds a numpy buffer; data moves only by explicit sends to the next rank
on the ring, and each send is counted. The bytes one rank sends must equal nccl-tests'
bus-bandwidth convention (bus factor × size), and the sequential steps × α plus those
bytes over the rank bandwidth must equal the cost model's time for the same collective.
"""

from __future__ import annotations

import numpy as np

from perfsim.cost.collectives import flat_time, rank_bandwidth, step_latency
from perfsim.hardware import Interconnect
from perfsim.ops import Collective
from perfsim.reference.registry import Outcome, check

RING = Interconnect(name="ring", topology="ring", bandwidth_per_direction=1e9, links_per_member=1, latency=2e-6,
                    source="a synthetic ring for the reference checks")


class Ring:
    """n ranks; `sent[r]` counts the bytes rank r put on the wire, `steps` the sequential steps."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent = [0] * n
        self.steps = 0

    def step(self, messages: list[tuple[int, int, np.ndarray]]) -> list[np.ndarray]:
        """One synchronous step: (source, destination, payload) sends; returns the payloads."""
        self.steps += 1
        for source, _, payload in messages:
            self.sent[source] += payload.nbytes
        return [payload.copy() for _, _, payload in messages]


def reduce_scatter(buffers: list[np.ndarray], ring: Ring) -> list[np.ndarray]:
    """Each rank ends with the sum of one chunk: rank r owns chunk (r + 1) mod n."""
    n = ring.n
    chunks = [np.array_split(b.copy(), n) for b in buffers]
    for s in range(n - 1):
        sends = [(r, (r + 1) % n, chunks[r][(r - s) % n]) for r in range(n)]
        for (_, dst, _), payload in zip(sends, ring.step(sends), strict=True):
            chunks[dst][(dst - 1 - s) % n] += payload
    return [chunks[r][(r + 1) % n] for r in range(n)]


def all_gather(pieces: list[np.ndarray], ring: Ring, first_chunk: int = 0) -> list[np.ndarray]:
    """Every rank ends with all pieces in chunk order; rank r starts with chunk (r + first_chunk) mod n."""
    n = ring.n
    held = [{(r + first_chunk) % n: pieces[r]} for r in range(n)]
    for s in range(n - 1):
        sends = [(r, (r + 1) % n, held[r][(r + first_chunk - s) % n]) for r in range(n)]
        for (src, dst, _), payload in zip(sends, ring.step(sends), strict=True):
            held[dst][(src + first_chunk - s) % n] = payload
    return [np.concatenate([held[r][c] for c in range(n)]) for r in range(n)]


def all_reduce(buffers: list[np.ndarray], ring: Ring) -> list[np.ndarray]:
    return all_gather(reduce_scatter(buffers, ring), ring, first_chunk=1)


def all_to_all(buffers: list[np.ndarray], ring: Ring) -> list[np.ndarray]:
    """Rank r sends its chunk j straight to rank j, one destination per step (n − 1 steps), as NCCL does."""
    n = ring.n
    chunks = [np.array_split(b, n) for b in buffers]
    result = [[chunks[r][r]] * n for r in range(n)]
    for shift in range(1, n):  # step `shift`: every rank sends the chunk destined `shift` ranks ahead
        sends = [(r, (r + shift) % n, chunks[r][(r + shift) % n]) for r in range(n)]
        for (src, dst, _), payload in zip(sends, ring.step(sends), strict=True):
            result[dst][src] = payload
    return [np.concatenate(parts) for parts in result]


def _outcome(kind: str, n: int, size: float, error: float, ring: Ring, detail: str) -> Outcome:
    op = Collective(kind=kind, size_bytes=size, group=n)
    bus_bytes = op.bus_factor(n) * size  # nccl-tests: what each rank moves at bus bandwidth
    model_s = flat_time(kind, size, n, RING)
    counted_s = ring.steps * step_latency(RING) + max(ring.sent) / rank_bandwidth(RING, n)
    counts = all(np.isclose(s, bus_bytes) for s in ring.sent) and bool(np.isclose(model_s, counted_s))
    return Outcome(error, 1e-9, counts, f"{detail}; {ring.steps} steps, {max(ring.sent):.0f} B sent per rank")


def _buffers(n: int, elements: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.normal(size=elements) for _ in range(n)]


@check("all-reduce-ring", op="all_reduce", variant="ring")
def _check_all_reduce() -> Outcome:
    n, elements = 6, 6 * 40
    buffers = _buffers(n, elements)
    ring = Ring(n)
    out = all_reduce(buffers, ring)
    error = max(float(np.abs(o - sum(buffers)).max()) for o in out)
    return _outcome("all_reduce", n, buffers[0].nbytes, error, ring, "every rank holds the sum")


@check("reduce-scatter-ring", op="reduce_scatter", variant="ring")
def _check_reduce_scatter() -> Outcome:
    n, elements = 5, 5 * 32
    buffers = _buffers(n, elements)
    ring = Ring(n)
    out = reduce_scatter(buffers, ring)
    total = np.array_split(sum(buffers), n)
    error = max(float(np.abs(out[r] - total[(r + 1) % n]).max()) for r in range(n))
    return _outcome("reduce_scatter", n, buffers[0].nbytes, error, ring, "rank r holds chunk r+1 of the sum")


@check("all-gather-ring", op="all_gather", variant="ring")
def _check_all_gather() -> Outcome:
    n = 7
    pieces = _buffers(n, 16)
    ring = Ring(n)
    out = all_gather(pieces, ring)
    error = max(float(np.abs(o - np.concatenate(pieces)).max()) for o in out)
    return _outcome("all_gather", n, out[0].nbytes, error, ring, "every rank holds the concatenation")


@check("all-to-all-ring", op="all_to_all", variant="ring")
def _check_all_to_all() -> Outcome:
    n, elements = 4, 4 * 8
    buffers = _buffers(n, elements)
    ring = Ring(n)
    out = all_to_all(buffers, ring)
    blocks = np.array([np.array_split(b, n) for b in buffers])  # [source, destination, chunk]
    expected = [np.concatenate(list(blocks[:, r])) for r in range(n)]  # the block transpose
    error = max(float(np.abs(o - e).max()) for o, e in zip(out, expected, strict=True))
    return _outcome("all_to_all", n, buffers[0].nbytes, error, ring, "rank r holds every rank's chunk r")
