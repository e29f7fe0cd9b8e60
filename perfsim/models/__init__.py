"""Model specs and what they turn into: parameter counts, traces, memory footprints."""

from perfsim.models.loader import WORKLOAD_DIR, load_model, shipped_models
from perfsim.models.params import active_params, total_params
from perfsim.models.spec import ModelSpec, MoESpec

__all__ = ["WORKLOAD_DIR", "MoESpec", "ModelSpec", "active_params", "load_model", "shipped_models", "total_params"]
