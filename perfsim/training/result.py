"""What `perfsim.api.train` returns: the step's summary, a tidy table of its ops, and its pictures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfsim.api import StepView
from perfsim.errors import PerfsimError
from perfsim.training.network import NetworkTrainingEstimate
from perfsim.training.step import TrainingEstimate

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from perfsim.hardware import Device


@dataclass(frozen=True)
class TrainResult(StepView):
    """One training step (`estimate`: a TrainingEstimate for a transformer, a NetworkTrainingEstimate for a CNN)."""

    estimate: TrainingEstimate | NetworkTrainingEstimate

    @property
    def bound(self) -> str:
        return self.summary["bound"]  # a NetworkTrainingEstimate names it in its summary only

    def _hardware(self) -> Device:
        return self.estimate.chip

    def _rows(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        """Per pass and op (critical stage, over the whole step)."""
        return summary["breakdown"]

    def time_to_train_s(self, tokens: float) -> float:
        """Seconds to train `tokens` tokens (samples, for a CNN) at this step's rate."""
        per_step = getattr(self.estimate, "tokens_per_step", None) or self.estimate.samples  # type: ignore[union-attr]
        return tokens / per_step * self.step_s

    def plot(self) -> Figure:
        """Where the step's seconds go (critical stage) and what fills a chip's memory, against its capacity."""
        from matplotlib.figure import Figure

        s = self.summary
        fig = Figure(figsize=(10, 3.2), dpi=110)
        left, right = fig.subplots(1, 2)
        times = {k.replace("_", " "): v for k, v in s["time_s"].items() if v > 0}
        left.barh(list(times), list(times.values()), color="#1f77b4")
        left.invert_yaxis()
        left.set_xlabel("seconds per step")
        left.set_title(f"step {s['step_s']:.3g} s, bound: {s['bound']}", fontsize=9)
        memory = {k.removesuffix("_bytes"): v / 2**30 for k, v in s["memory"].items()
                  if k not in ("total_bytes", "capacity_bytes")}
        bottom = 0.0
        for name, gib in memory.items():
            right.bar(["per chip"], [gib], bottom=bottom, label=name)
            bottom += gib
        right.axhline(s["memory"]["capacity_bytes"] / 2**30, color="k", linestyle="--", label="capacity")
        right.set_ylabel("GiB")
        right.legend(fontsize=7)
        right.set_title("memory", fontsize=9)
        chip = self.estimate.chip.name
        on = f"{s['devices']} × {chip}" if s["hardware"] == chip else f"{s['devices']} × {chip} in {s['hardware']}"
        fig.suptitle(f"training {s['model']} on {on}")
        fig.tight_layout()
        return fig

    def timeline(self, what: str = "pipeline") -> pd.DataFrame:
        """The discrete-event schedule of the `pipeline` (pp > 1) or of the last micro-batch's backward with its
        `dp` gradient buckets (first stage), one row per task. Raise PerfsimError where the step has none."""
        e = self.estimate
        if isinstance(e, TrainingEstimate):
            if what == "pipeline" and e.pipeline_run is not None:
                return e.pipeline_run.schedule.timeline()
            if what == "dp" and e.dp_overlap:
                return e.dp_overlap[0].schedule.timeline()
        raise PerfsimError(f"this step has no {what} schedule (pipeline: pp > 1; dp: dp > 1 with zero < 3)")

    def gantt(self, what: str = "pipeline") -> Figure:
        """The timeline() on a Gantt chart."""
        from perfsim.engine.export import gantt

        title = {"pipeline": "pipeline schedule", "dp": "last backward with DP gradient buckets"}[what]
        return gantt(self.timeline(what), f"{self.summary['model']}: {title}")
