"""The scheduler: a front door every dialect submits to, a worker that runs the engine, and
finishing that stores what it made; they share one durable task store and one event channel."""

from plantain.scheduler.channel import EventChannel, LocalChannel
from plantain.scheduler.frontdoor import FrontDoor, Submission
from plantain.scheduler.scheduler import Scheduler

__all__ = ["EventChannel", "FrontDoor", "LocalChannel", "Scheduler", "Submission"]
