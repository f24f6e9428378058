"""Admitting a job, in one atomic step: the queue has room, the tenant's quotas (jobs
in flight, submissions per minute) allow it, and its record is created.

The counts live in Redis, so every API process enforces the same limits, and no
crash between checking and creating can leave a slot taken without a record. A
job's slot is freed by the job store's finishing script, whichever way it ends.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from tasks.store import ACTIVE_PREFIX, PREFIX, JobStore, now_ms

WINDOW_MS = 60_000
# KEYS: queue, active set, recent set, job record.
# ARGV: now, job id, slot lapse (ms), concurrent, per minute, window (ms), max queue depth,
#       record ttl (s), then the record's fields as name, value pairs.
_ADMIT = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[7]) then return {'queue', 0} end
local now, lapse, window = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[6])
local concurrent, per_minute = tonumber(ARGV[4]), tonumber(ARGV[5])
if concurrent > 0 or per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  local refused, wait = false, 0
  if per_minute > 0 and redis.call('ZCARD', KEYS[3]) >= per_minute then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    refused, wait = 'per_minute', tonumber(oldest[2]) + window - now
  end
  if concurrent > 0 and redis.call('ZCARD', KEYS[2]) >= concurrent then
    refused, wait = refused or 'concurrent', math.max(wait, 1000)
  end
  if refused then return {refused, wait} end
  redis.call('ZADD', KEYS[2], now + lapse, ARGV[2])
  redis.call('ZADD', KEYS[3], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], lapse)
  redis.call('PEXPIRE', KEYS[3], window)
end
redis.call('HSET', KEYS[4], unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[4], ARGV[8])
return {'ok', 0}
"""


def active_key(tenant: str) -> str:
    """Sorted set of the tenant's queued and running jobs (scored by when a slot lapses)."""
    return ACTIVE_PREFIX + tenant


def recent_key(tenant: str) -> str:
    return f"{PREFIX}recent:{tenant}"


@dataclass(frozen=True)
class Refusal:
    limit: str  # "queue", "concurrent" or "per_minute"
    allowed: int  # that limit's value
    retry_after_ms: int


class Admission:
    """Limits of 0 mean none; `tenant_quotas` holds a tenant's own `concurrent` and
    `per_minute`, where they differ from the defaults. A slot whose job vanished without
    ending (its record expired) lapses with the record."""

    def __init__(
        self,
        store: JobStore,
        queue: str,
        max_depth: int,
        concurrent: int,
        per_minute: int,
        tenant_quotas: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        self.store, self.queue, self.max_depth = store, queue, max_depth
        self.defaults = {"concurrent": concurrent, "per_minute": per_minute}
        self.tenant_quotas = tenant_quotas or {}
        self._admit = store.redis.register_script(_ADMIT)

    def quotas(self, tenant: str) -> dict[str, int]:
        return self.defaults | dict(self.tenant_quotas.get(tenant, {}))

    def admit(self, job_id: str, timeout_ms: int, tenant: str) -> Refusal | None:
        """Create the job's record, or say which limit refuses it and for how long."""
        now, store, quotas = now_ms(), self.store, self.quotas(tenant)
        keys = [self.queue, active_key(tenant), recent_key(tenant), store.key(job_id)]
        args = [now, job_id, store.pending_ttl * 1000, quotas["concurrent"], quotas["per_minute"]]
        args += [WINDOW_MS, self.max_depth, store.pending_ttl]
        for name, value in store.new_record(timeout_ms, tenant, now).items():
            args += [name, value]
        verdict, wait_ms = self._admit(keys=keys, args=args)
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        if verdict == "ok":
            return None
        allowed = self.max_depth if verdict == "queue" else quotas[verdict]
        return Refusal(verdict, allowed, max(int(wait_ms), 0))

    def withdraw(self, job_id: str, tenant: str) -> None:
        """For an admitted job that could not be queued: it counts against no limit."""
        with self.store.redis.pipeline() as pipe:
            pipe.zrem(active_key(tenant), job_id)
            pipe.zrem(recent_key(tenant), job_id)
            pipe.delete(self.store.key(job_id))
            pipe.execute()
