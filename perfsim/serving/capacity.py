"""Capacity search: the highest arrival rate whose latency percentiles meet the SLOs (MLPerf Server style).

A rate meets the SLOs when the `percentile` of TTFT and of TPOT over the finished requests are each at or under
their SLO (an SLO not given always holds; requests with one output token have no TPOT). The search needs a
bracket [low, high] where low meets them and high misses them; without one it starts at `start` and doubles (or
halves) it, at most MAX_EXPANSIONS times, until the two are found. It then bisects geometrically, keeping the half
that brackets the answer, until high / low ≤ 1 + tolerance or after MAX_BISECTIONS steps: the answer is the last
rate that met the SLOs, within `tolerance` below the lowest rate found to miss them.

Every rate runs the same requests (one seed, gaps scaled by 1 / rate), so latency grows with the rate up to the
noise of a finite run. That noise is stated, not hidden: at the answer and at the lowest missing rate, the search
reports the distribution-free 95 % confidence interval of each percentile (the order statistics a binomial places
around it, Hahn & Meeker, Statistical Intervals, §5.2). An SLO inside an interval means more requests are needed
to tell that rate apart from the threshold.

Every probe's goodput (requests meeting both SLOs per second) and throughput are kept: the goodput-vs-rate curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from perfsim.errors import PerfsimError
from perfsim.serving.run import ServingRun, shared_step_costs

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

RATE_TOLERANCE = 0.01
"""The answer is found to within 1 % (relative) below the true threshold."""
MAX_BISECTIONS = 30
"""A bound on the bisection steps: ⌈log2(ln(high / low) / ln(1.01))⌉ is 10 for high / low = 1000."""
MAX_EXPANSIONS = 20
"""Doublings (or halvings) from the start rate when no bracket is given: a factor of about a million each way."""
CONFIDENCE = 0.95
SLOS = ("slo_ttft_s", "slo_tpot_s")
STEADY_LIFETIMES = 100
"""A run judges a rate's steady state when its arrivals span this many request lifetimes (a request's median
end-to-end time at that rate): fewer, and a burst that finishes before the queue builds flatters the rate."""
MAX_STEADY_REQUESTS = 20_000
"""The most requests a probe is lengthened to (checked against runs of 10,000 requests)."""


def steady_requests(rate: float, lifetime_s: float, least: int) -> int:
    """Requests whose arrivals at `rate` span STEADY_LIFETIMES lifetimes of `lifetime_s`: at least `least`, at
    most MAX_STEADY_REQUESTS."""
    return min(MAX_STEADY_REQUESTS, max(least, math.ceil(rate * STEADY_LIFETIMES * lifetime_s)))


@dataclass(frozen=True)
class Probe:
    """One simulated rate: its percentiles (None when no request has the metric), the 95 % interval of each,
    goodput and throughput, and the first SLO it misses (None if it meets them)."""

    rate_rps: float
    ttft_s: float | None
    tpot_s: float | None
    ttft_interval_s: tuple[float, float] | None
    tpot_interval_s: tuple[float, float] | None
    goodput_requests_per_s: float
    throughput_tokens_per_s: float
    requests: int
    missed: str | None


@dataclass(frozen=True)
class RateSearch:
    """The answer `rate_rps`, the final `bracket` (highest rate met, lowest rate missed), the SLO that binds above
    the answer, and every probe in the order run."""

    rate_rps: float
    bracket: tuple[float, float]
    binding: str
    percentile: float
    tolerance: float
    probes: tuple[Probe, ...]

    def probe(self, rate: float) -> Probe:
        return next(p for p in self.probes if p.rate_rps == rate)

    def summary(self) -> dict[str, object]:
        """The answer, its bracket and the confidence at both ends, as `serve --max-rate --format json` prints it."""
        met, missed = self.probe(self.bracket[0]), self.probe(self.bracket[1])

        def ends(p: Probe) -> dict[str, object]:
            return {"rate_rps": p.rate_rps, "requests": p.requests, "ttft_s": p.ttft_s, "tpot_s": p.tpot_s,
                    "ttft_interval_s": list(p.ttft_interval_s or ()), "tpot_interval_s": list(p.tpot_interval_s or ())}

        return {"max_rate_rps": self.rate_rps, "bracket_rps": list(self.bracket), "binding_slo": self.binding,
                "percentile": self.percentile, "tolerance": self.tolerance, "probes": len(self.probes),
                "confidence": CONFIDENCE, "met": ends(met), "missed": ends(missed),
                "goodput_requests_per_s": met.goodput_requests_per_s,
                "throughput_tokens_per_s": met.throughput_tokens_per_s}

    def to_frame(self) -> pd.DataFrame:
        """The goodput curve: one row per probed rate, lowest first."""
        import pandas as pd

        rows = [{"rate_rps": p.rate_rps, "goodput_requests_per_s": p.goodput_requests_per_s,
                 "throughput_tokens_per_s": p.throughput_tokens_per_s, f"ttft_p{self.percentile:g}_s": p.ttft_s,
                 f"tpot_p{self.percentile:g}_s": p.tpot_s, "meets_slo": p.missed is None}
                for p in sorted(self.probes, key=lambda p: p.rate_rps)]
        return pd.DataFrame(rows)

    def figure(self) -> Figure:
        """Goodput and throughput against the offered rate, the answer marked."""
        from matplotlib.figure import Figure

        frame = self.to_frame()
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.subplots()
        ax.plot(frame["rate_rps"], frame["goodput_requests_per_s"], "o-", label="goodput (requests meeting SLOs / s)")
        ax.plot(frame["rate_rps"], frame["rate_rps"], ":", color="grey", label="offered rate")
        ax.axvline(self.rate_rps, color="tab:red", ls="--", label=f"max rate {self.rate_rps:.3g} requests/s")
        ax.set(xscale="log", xlabel="offered rate (requests/s)", ylabel="requests/s",
               title=f"p{self.percentile:g} SLO capacity search")
        ax.legend()
        return fig


def quantile_interval(values: np.ndarray, q: float, level: float = CONFIDENCE) -> tuple[float, float]:
    """The distribution-free `level` confidence interval of the q-th percentile: order statistics (l, u) with
    P(l ≤ B < u) ≥ level for B ~ Binomial(n, q / 100), as equal-tailed as the integers allow (clamped to the
    sample's range when n is too small)."""
    data = np.sort(values)
    n, p = len(data), q / 100
    k = np.arange(n + 1)
    log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(n + 1)])
               + k * (math.log(p) if p > 0 else -math.inf) + (n - k) * (math.log1p(-p) if p < 1 else -math.inf))
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    cdf /= cdf[-1]
    tail = (1 - level) / 2
    low = int(np.searchsorted(cdf, tail, side="right"))  # P(B < low) ≤ tail
    high = int(np.searchsorted(cdf, 1 - tail)) + 1  # P(B < high) ≥ 1 − tail
    return float(data[min(max(low - 1, 0), n - 1)]), float(data[min(high - 1, n - 1)])


def probe(run: ServingRun, rate: float, slo_ttft_s: float | None, slo_tpot_s: float | None, q: float) -> Probe:
    """How `run` (at `rate`) fares against the SLOs at the q-th percentile."""
    stats: dict[str, tuple[float | None, tuple[float, float] | None]] = {}
    for name in ("ttft", "tpot"):
        data = np.frombuffer(getattr(run.recorder, name), dtype=float)
        data = data[~np.isnan(data)]
        stats[name] = (float(np.percentile(data, q)), quantile_interval(data, q)) if len(data) else (None, None)
    missed = next((slo for slo, limit, (value, _) in zip(SLOS, (slo_ttft_s, slo_tpot_s), stats.values(), strict=True)
                   if limit is not None and value is not None and value > limit), None)
    summary = run.summary
    return Probe(rate, stats["ttft"][0], stats["tpot"][0], stats["ttft"][1], stats["tpot"][1],
                 float(summary["goodput_requests_per_s"]), float(summary["throughput_tokens_per_s"]),  # type: ignore
                 len(run.recorder.e2e), missed)


def max_rate(run_at: Callable[[float], ServingRun], slo_ttft_s: float | None, slo_tpot_s: float | None,
             percentile: float = 99, bracket: tuple[float, float] | None = None, start: float = 1.0,
             tolerance: float = RATE_TOLERANCE, where: str = "--rate-range") -> RateSearch:
    """The highest rate (requests/s) at which `run_at(rate)` meets the SLOs at `percentile` (see the module doc).

    Raise PerfsimError (naming `where`) if no SLO is given, if the bracket's low end misses the SLOs or its high end
    meets them, or if no bracket is found within MAX_EXPANSIONS doublings or halvings of `start`.
    """
    if slo_ttft_s is None and slo_tpot_s is None:
        raise PerfsimError("a capacity search needs --slo-ttft or --slo-tpot")
    if not (0 < percentile <= 100 and tolerance > 0):
        raise PerfsimError(f"--percentile must be in (0, 100], got {percentile:g}")
    probes: list[Probe] = []

    def check(rate: float) -> Probe:
        probes.append(probe(run_at(rate), rate, slo_ttft_s, slo_tpot_s, percentile))
        return probes[-1]

    with shared_step_costs():
        return _search(check, probes, bracket, start, tolerance, percentile, where)


def _search(check: Callable[[float], Probe], probes: list[Probe], bracket: tuple[float, float] | None, start: float,
            tolerance: float, percentile: float, where: str) -> RateSearch:
    """The bracket (given, or found from `start`), then the bisection; `check` appends each probe to `probes`."""
    if bracket is not None:
        try:
            low, high = (float(end) for end in bracket)
        except (TypeError, ValueError):
            raise PerfsimError(f"{where}: {bracket!r} is not a pair LOW, HIGH of rates (requests/s)") from None
        if not 0 < low < high:
            raise PerfsimError(f"{where}: need 0 < low < high, got {low:g} and {high:g}")
        if (missed := check(low).missed) is not None:
            raise PerfsimError(f"{where}: the low end, {low:g} requests/s, already misses {missed}; lower it")
        binding = check(high).missed
        if binding is None:
            raise PerfsimError(f"{where}: the high end, {high:g} requests/s, still meets the SLOs; raise it")
    else:
        low, high, binding = _expand(check, start)
    for _ in range(MAX_BISECTIONS):
        if high / low <= 1 + tolerance:
            break
        middle = math.sqrt(low * high)
        missed = check(middle).missed
        if missed is None:
            low = middle
        else:
            high, binding = middle, missed
    return RateSearch(low, (low, high), binding, percentile, tolerance, tuple(probes))


def _expand(check: Callable[[float], Probe], start: float) -> tuple[float, float, str]:
    """(a rate that meets the SLOs, the next one up by a doubling that misses them, the SLO it misses)."""
    if not (math.isfinite(start) and start > 0):
        raise PerfsimError(f"--rate must be positive and finite, got {start}")
    rate, missed = start, check(start).missed
    factor = 2.0 if missed is None else 0.5
    for _ in range(MAX_EXPANSIONS):
        nxt = rate * factor
        now = check(nxt).missed
        if (missed is None) != (now is None):
            low, high = (rate, nxt) if factor > 1 else (nxt, rate)
            return low, high, (now or missed)  # type: ignore[return-value]
        rate, missed = nxt, now
    if missed is None:  # every request arrives at once and still meets the SLOs: the run is a burst
        raise PerfsimError(f"--max-rate: {rate:g} requests/s still meets the SLOs after {MAX_EXPANSIONS} steps from "
                           f"{start:g}: too few requests to load a replica; give more --requests (or leave it out: "
                           "each probe then spans a steady state) or --rate-range LOW:HIGH")
    raise PerfsimError(f"--max-rate: {rate:g} requests/s still misses them after {MAX_EXPANSIONS} steps from "
                       f"{start:g}; give --rate-range LOW:HIGH")
