"""Expert-parallel load from a routing distribution: the busiest rank's token-expert pairs over the mean.

A routing spec (Scenario.routing) names where tokens send their top-k choices:
- "uniform": every expert equally popular;
- "zipf:S": expert popularity ∝ 1/rank^S (S ≥ 0), the ranks dealt to the experts in a random order (expert
  ids carry no popularity order, so the expectation is over placements too);
- a path to a CSV trace: either one row per token listing the expert ids it chose (no header), or a header
  `expert,count` and one row per expert with its count of token-expert pairs.

Each token draws its k experts one after another without replacement, each draw ∝ popularity among those
not yet drawn (Plackett–Luce, drawn as the top k of log popularity + Gumbel noise). Grouped routing (MoGE)
splits the experts into `groups` contiguous blocks and draws k / groups in each block. Experts sit on EP ranks
in contiguous blocks of experts / ep (as the trace builder places them; see perfsim.ops.routing_imbalance).

Estimator: the mean over SAMPLES seeded samples of max/mean per-rank load for one step of `tokens` tokens.
A sample draws min(tokens, POOL) tokens (a per-token trace: its rows); a step of more tokens than the pool
resamples the pool's tokens with replacement (a multinomial over its rows), a bootstrap. Closed form: when
groups are placed whole on ranks (ep divides groups), every rank receives exactly tokens · k / ep pairs:
max/mean = 1.0 for any sample, returned without sampling.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from perfsim.errors import PerfsimError
from perfsim.ops import routing_imbalance

SAMPLES = 32  # seeded samples averaged per estimate
POOL = 2048  # tokens drawn per sample; larger steps resample them
SEED = 0


@functools.lru_cache(maxsize=256)
def busiest_load(routing: str, experts: int, top_k: int, groups: int, ep: int, tokens: int,
                 samples: int = SAMPLES, seed: int = SEED) -> float:
    """Expected max/mean token-expert pairs per EP rank for a step of `tokens` tokens routed by `routing`.

    Raise PerfsimError for a routing spec that cannot be read or does not fit the experts and top_k.
    """
    popularity, trace = _parse(routing, experts, top_k, groups)
    if ep == 1 or groups % ep == 0:
        return 1.0  # every rank holds whole groups: exactly tokens · top_k / ep pairs each
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(samples):
        rows = trace if trace is not None else _draw(rng, _placed(rng, popularity, routing), top_k, groups,
                                                     min(tokens, POOL))
        weights = np.ones(len(rows)) if len(rows) == tokens else rng.multinomial(tokens, np.full(len(rows),
                                                                                                 1 / len(rows)))
        load = np.bincount(rows.ravel(), weights=np.repeat(weights, rows.shape[1]), minlength=experts)
        ratios.append(routing_imbalance(tuple(load), ep))
    return float(np.mean(ratios))


def step_imbalance(routing: str, moe_imbalance: float, experts: int, top_k: int, groups: int, ep: int,
                   tokens: int) -> float:
    """MoE.imbalance of a step routed by `routing`; the scenario's hand-set `moe_imbalance` must stay 1.0."""
    if moe_imbalance != 1.0:
        raise PerfsimError("give routing or moe_imbalance, not both (routing derives the imbalance)")
    return busiest_load(routing, experts, top_k, groups, ep, tokens)


def _placed(rng: np.random.Generator, popularity: np.ndarray, routing: str) -> np.ndarray:
    """Zipf ranks dealt to the experts in a random order; uniform and traced popularity as they are."""
    return rng.permutation(popularity) if routing.startswith("zipf:") else popularity


def _draw(rng: np.random.Generator, popularity: np.ndarray, top_k: int, groups: int, tokens: int) -> np.ndarray:
    """`tokens` × top_k expert ids: top_k / groups per group, Plackett–Luce within each group."""
    per_group = len(popularity) // groups
    with np.errstate(divide="ignore"):
        keys = np.log(popularity).reshape(groups, per_group) + rng.gumbel(size=(tokens, groups, per_group))
    k = top_k // groups
    chosen = np.argpartition(-keys, k - 1, axis=-1)[..., :k] + per_group * np.arange(groups)[:, None]
    return chosen.reshape(tokens, top_k)


@functools.lru_cache(maxsize=64)
def _parse(routing: str, experts: int, top_k: int, groups: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(popularity per expert, per-token trace rows or None) of a routing spec."""
    if routing == "uniform":
        return np.ones(experts), None
    if routing.startswith("zipf:"):
        try:
            exponent = float(routing.removeprefix("zipf:"))
        except ValueError:
            exponent = float("nan")
        if not np.isfinite(exponent) or exponent < 0:
            raise PerfsimError(f"routing: '{routing}' needs a finite exponent S ≥ 0 after 'zipf:' (e.g. zipf:1.2)")
        return 1.0 / np.arange(1, experts + 1) ** exponent, None
    return _trace(Path(routing), experts, top_k, groups)


def _trace(path: Path, experts: int, top_k: int, groups: int) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise PerfsimError(f"routing: '{path}' is not uniform, zipf:S or a readable CSV trace file")
    try:
        rows = [row for row in csv.reader(path.read_text().splitlines()) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PerfsimError(f"routing: cannot read {path}: {error}") from None
    if not rows:
        raise PerfsimError(f"routing: {path} is empty")
    counts = [c.strip() for c in rows[0]] == ["expert", "count"]
    try:
        values = np.array([[int(v) for v in row] for row in rows[1:] if counts] if counts
                          else [[int(v) for v in row] for row in rows])
    except ValueError:
        raise PerfsimError(f"routing: {path} holds a non-integer or ragged row; expected expert ids per token, "
                           "or a header 'expert,count' and one 'id,count' row per expert") from None
    width = 2 if counts else top_k
    if values.ndim != 2 or values.shape[1] != width:
        raise PerfsimError(f"routing: {path}: every row must hold {width} integers "
                           f"({'expert,count' if counts else f'the top_k = {top_k} expert ids of one token'})")
    ids = values[:, 0] if counts else values.ravel()
    if ids.min() < 0 or ids.max() >= experts:
        raise PerfsimError(f"routing: {path}: expert ids must lie in 0..{experts - 1}")
    if counts:
        popularity = np.bincount(ids, weights=values[:, 1], minlength=experts).astype(float)
        if (values[:, 1] < 0).any():
            raise PerfsimError(f"routing: {path}: counts must be ≥ 0")
        per_group = experts // groups
        if (np.count_nonzero(popularity.reshape(groups, per_group), axis=1) < top_k // groups).any():
            raise PerfsimError(f"routing: {path}: each group of {per_group} experts needs ≥ {top_k // groups} "
                               "experts with a non-zero count")
        return popularity, None
    if groups > 1 and (np.sort(values // (experts // groups), axis=1) !=
                       np.repeat(np.arange(groups), top_k // groups)).any():
        raise PerfsimError(f"routing: {path}: a token does not pick {top_k // groups} expert(s) in each of the "
                           f"{groups} groups, as grouped routing does")
    if (np.sort(values, axis=1)[:, 1:] == np.sort(values, axis=1)[:, :-1]).any():
        raise PerfsimError(f"routing: {path}: a token lists the same expert twice")
    return np.bincount(ids, minlength=experts).astype(float), values
