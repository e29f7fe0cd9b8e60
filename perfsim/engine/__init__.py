"""The discrete-event engine: a step's ops on simpy, with contention, overlap and pipeline bubbles."""

from perfsim.engine.simulate import Schedule, simulate
from perfsim.engine.tasks import Task, tasks_from_trace

__all__ = ["Schedule", "Task", "simulate", "tasks_from_trace"]
