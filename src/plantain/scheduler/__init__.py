"""The one durable queue every front door submits to, its worker, and the live event feed."""

from plantain.scheduler.events import EventBus
from plantain.scheduler.scheduler import Scheduler

__all__ = ["EventBus", "Scheduler"]
