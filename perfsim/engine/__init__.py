"""The discrete-event engine: a step's ops with contention, overlap and pipeline bubbles."""

from perfsim.engine.chains import schedule_step
from perfsim.engine.simulate import Schedule, simulate
from perfsim.engine.tasks import Task, tasks_from_stages

__all__ = ["Schedule", "Task", "schedule_step", "simulate", "tasks_from_stages"]
