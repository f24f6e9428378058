"""How a job stands, and the codes only the service (not the sandbox) ends jobs with."""

from enum import StrEnum

from sandbox.outcome import SERVICE_CODES


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
LIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})

WORKER_LOST = "WORKER_LOST"
INVALID_JOB = "INVALID_JOB"  # a worker got a message it could not decode or hand over
KNOWN_CODES = SERVICE_CODES | {WORKER_LOST, INVALID_JOB, "OK"}
