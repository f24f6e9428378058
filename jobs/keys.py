"""Every name the service gives to keys and channels in Redis, in one place.

Each key has one owner, the module whose code writes it: the store (job records, the
running-deadline set, the done and cancel channels, the figures its finishing script
adds to, and each tenant's stored results: its finishing script counts them in, its
`stored` Lua helper forgets those expired, also when admission's script calls it),
admission (a tenant's slots and recent submissions: a slot is taken when a job is
admitted and given back when admission, counting, finds that job ended) and presence
(workers, idle processes).
"""

PREFIX = "exec:"
RUNNING_DEADLINES = PREFIX + "running"  # sorted set: job id -> when it must have finished
ACTIVE_PREFIX = PREFIX + "active:"  # + tenant: sorted sets of jobs in flight, for quotas
RECENT_PREFIX = PREFIX + "recent:"  # + tenant: sorted set of submissions in the window
STORED_PREFIX = PREFIX + "stored:"  # + tenant: sorted set "<bytes>:<job id>" -> expiry (ms)
STORED_BYTES_PREFIX = PREFIX + "stored_bytes:"  # + tenant: the bytes that set holds
METRICS = PREFIX + "metrics"  # hash: counters and histogram buckets of ended jobs
WORKERS = PREFIX + "workers"  # presence: worker identity -> confinement and slots
IDLE_PROCESSES = PREFIX + "idle"  # presence: pool process -> its idle pre-spawned processes
DONE_PATTERN = PREFIX + "done:*"
CANCEL_PATTERN = PREFIX + "cancel:*"


def job(job_id: str) -> str:
    """The hash holding a job's record."""
    return f"{PREFIX}job:{job_id}"


def done_channel(job_id: str) -> str:
    """Published to when the job ends."""
    return f"{PREFIX}done:{job_id}"


def cancel_channel(job_id: str) -> str:
    """Published to when the job is cancelled, for the worker running it."""
    return f"{PREFIX}cancel:{job_id}"


def active(tenant: str) -> str:
    """Sorted set of the tenant's queued and running jobs (scored by when a slot lapses)."""
    return ACTIVE_PREFIX + tenant


def recent(tenant: str) -> str:
    return RECENT_PREFIX + tenant


def stored(tenant: str) -> str:
    return STORED_PREFIX + tenant


def stored_bytes(tenant: str) -> str:
    return STORED_BYTES_PREFIX + tenant
