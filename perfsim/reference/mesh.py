"""A P×P grid of cores in numpy running WaferLLM's MeshGEMM (Cannon, interleaved) and MeshGEMV (K-tree all-reduce).

Each core holds its own tiles; data crosses cores only through `Grid.exchange`, which logs every message
with its round, its (row, col) endpoints and its bytes. The checks compare the results with np.matmul and
the logged messages with perfsim.cost.mesh.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from perfsim.cost.mesh import MeshCounts, interleave, ktree_rounds, meshgemm_counts, meshgemv_counts
from perfsim.reference.registry import Outcome, check

Coord = tuple[int, int]
GRIDS = (4, 5, 8)  # P values the checks run: a power of two, an odd P, and a P with partial K-tree groups
RELATIVE_TOLERANCE = 1e-9  # float64 results may differ from np.matmul by summation order only


@dataclass(frozen=True)
class Message:
    round: int
    src: Coord
    dst: Coord
    nbytes: int

    @property
    def hops(self) -> int:
        return abs(self.src[0] - self.dst[0]) + abs(self.src[1] - self.dst[1])


class Grid:
    """P×P cores, each a dict of named numpy tiles; `exchange` is the only way data moves between cores."""

    def __init__(self, p: int) -> None:
        self.cores: dict[Coord, dict[str, np.ndarray]] = {(r, c): {} for r in range(p) for c in range(p)}
        self.log: list[Message] = []

    def exchange(self, round_: int, moves: list[tuple[Coord, Coord]], name: str, accumulate: bool = False) -> None:
        """Send tile `name` along every (src, dst) at once; the receiver replaces its tile, or adds to it."""
        payloads = [self.cores[src][name] for src, _ in moves]  # all read before any write: a simultaneous shift
        for (src, dst), tile in zip(moves, payloads, strict=True):
            self.log.append(Message(round_, src, dst, tile.nbytes))
            held = self.cores[dst]
            held[name] = held[name] + tile if accumulate else tile.copy()

    def counts(self) -> MeshCounts:
        """The logged messages in MeshCounts terms (a round lasts as long as its farthest message)."""
        farthest: dict[int, int] = defaultdict(int)
        for msg in self.log:
            farthest[msg.round] = max(farthest[msg.round], msg.hops)
        return MeshCounts(rounds=len(farthest), messages=len(self.log),
                          max_hops_per_message=max(farthest.values(), default=0),
                          hops=sum(msg.hops for msg in self.log), critical_path_hops=sum(farthest.values()),
                          message_bytes=sum(msg.nbytes for msg in self.log),
                          hop_bytes=sum(msg.nbytes * msg.hops for msg in self.log))


def mesh_gemm(a: np.ndarray, b: np.ndarray, p: int, order: list[int] | None = None) -> tuple[np.ndarray, Grid]:
    """C = A @ B by Cannon on a P×P grid; ring position r of rows and columns sits at physical index order[r].

    `order` defaults to the interleaved layout; the skew (A tile (i, i+j), B tile (i+j, j) at position (i, j))
    is applied as the tiles are loaded. Then P multiply-accumulate steps, with a cyclic shift between
    consecutive steps: A tiles one ring position left along rows, B tiles one up along columns.
    Raise ValueError if P does not divide m, k and n.
    """
    (m, k), n = a.shape, b.shape[1]
    if m % p or k % p or n % p:
        raise ValueError(f"P = {p} must divide m = {m}, k = {k} and n = {n}")
    mt, kt, nt = m // p, k // p, n // p
    phys = interleave(p) if order is None else order

    def at(i: int, j: int) -> Coord:
        return phys[i % p], phys[j % p]

    grid = Grid(p)
    for i in range(p):
        for j in range(p):
            s = (i + j) % p
            grid.cores[at(i, j)].update(a=a[i * mt:(i + 1) * mt, s * kt:(s + 1) * kt].copy(),
                                        b=b[s * kt:(s + 1) * kt, j * nt:(j + 1) * nt].copy(), c=np.zeros((mt, nt)))
    positions = [(i, j) for i in range(p) for j in range(p)]
    for step in range(p):
        for core in grid.cores.values():
            core["c"] += core["a"] @ core["b"]
        if step < p - 1:
            grid.exchange(step, [(at(i, j), at(i, j - 1)) for i, j in positions], "a")
            grid.exchange(step, [(at(i, j), at(i - 1, j)) for i, j in positions], "b")
    return np.block([[grid.cores[at(i, j)]["c"] for j in range(p)] for i in range(p)]), grid


def mesh_gemv(x: np.ndarray, w: np.ndarray, p: int, k_tree: int = 2) -> tuple[np.ndarray, Grid]:
    """y = x @ W on a P×P grid: core (i, j) holds x block i and W tile (i, j) and computes a partial y block j;
    each column all-reduces: the K-tree reduce of ktree_rounds, then the mirrored tree broadcasts the sum.

    Returns a (P, n) array whose row r is y as grid row r's cores hold it (all rows equal after the broadcast).
    Raise ValueError if P does not divide k and n.
    """
    k, n = w.shape
    if k % p or n % p:
        raise ValueError(f"P = {p} must divide k = {k} and n = {n}")
    kt, nt = k // p, n // p
    grid = Grid(p)
    for (r, c), core in grid.cores.items():
        core["y"] = x[r * kt:(r + 1) * kt] @ w[r * kt:(r + 1) * kt, c * nt:(c + 1) * nt]
    reduce = ktree_rounds(p, k_tree)
    for round_, pairs in enumerate(reduce):
        grid.exchange(round_, [((src, c), (dst, c)) for src, dst in pairs for c in range(p)], "y", accumulate=True)
    for round_, pairs in enumerate(reversed(reduce), start=len(reduce)):
        grid.exchange(round_, [((dst, c), (src, c)) for src, dst in pairs for c in range(p)], "y")
    return np.array([np.concatenate([grid.cores[(r, c)]["y"] for c in range(p)]) for r in range(p)]), grid


@check("mesh-gemm-cannon", op="gemm", variant="mesh_cannon")
def check_mesh_gemm() -> Outcome:
    """MeshGEMM for P = 4, 5, 8 (float64 tiles 2×3 @ 3×4) against np.matmul, within 1e-9 × max|C|.

    counts_match: the logged messages equal meshgemm_counts (8-byte elements) and no shift exceeds 2 hops.
    """
    rng = np.random.default_rng(0)
    errors, scales, mismatches = [], [], []
    for p in GRIDS:
        a, b = rng.standard_normal((2 * p, 3 * p)), rng.standard_normal((3 * p, 4 * p))
        c, grid = mesh_gemm(a, b, p)
        expected = a @ b
        errors.append(float(np.max(np.abs(c - expected))))
        scales.append(float(np.max(np.abs(expected))))
        got, want = grid.counts(), meshgemm_counts(p, 2 * p, 4 * p, 3 * p, bytes_per_element=8)
        if got != want or got.max_hops_per_message > 2:
            mismatches.append(f"P={p}: simulated {got}, cost model {want}")
    return Outcome(max(errors), RELATIVE_TOLERANCE * min(scales), not mismatches,
                   "; ".join(mismatches) or f"P={GRIDS}: counts agree, every shift ≤ 2 hops")


@check("mesh-gemv-ktree", op="gemm", variant="mesh_gemv_ktree")
def check_mesh_gemv() -> Outcome:
    """MeshGEMV with a K = 2 tree for P = 4, 5, 8 (float64, x[3P] @ W[3P, 2P]) against np.matmul on every core,
    within 1e-9 × max|y|; counts_match: the logged messages equal meshgemv_counts (8-byte elements)."""
    rng = np.random.default_rng(1)
    errors, scales, mismatches = [], [], []
    for p in GRIDS:
        x, w = rng.standard_normal(3 * p), rng.standard_normal((3 * p, 2 * p))
        y, grid = mesh_gemv(x, w, p)
        expected = x @ w
        errors.append(float(np.max(np.abs(y - expected))))
        scales.append(float(np.max(np.abs(expected))))
        got, want = grid.counts(), meshgemv_counts(p, 2 * p, bytes_per_element=8, k_tree=2)
        if got != want:
            mismatches.append(f"P={p}: simulated {got}, cost model {want}")
    return Outcome(max(errors), RELATIVE_TOLERANCE * min(scales), not mismatches,
                   "; ".join(mismatches) or f"P={GRIDS}: counts agree")
