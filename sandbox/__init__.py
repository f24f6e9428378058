"""Run one JavaScript/TypeScript function in a fresh, permission-less Deno process.

Pure Python plus a JS harness; it knows nothing of queues or HTTP.
"""

from sandbox.job import InvalidJob, Job
from sandbox.limits import Limits
from sandbox.outcome import Failure, Outcome
from sandbox.runner import run

__all__ = ["Failure", "InvalidJob", "Job", "Limits", "Outcome", "run"]
