"""Per-tenant limits on jobs in flight and on submissions per minute.

The counts live in Redis, so every API process enforces the same limits. A job's
slot is freed by the job store's finishing script, whichever way the job ends.
"""

from dataclasses import dataclass

import redis

from tasks.store import ACTIVE_PREFIX, PREFIX, now_ms

WINDOW_MS = 60_000
_ADMIT = """
local now, lapse = tonumber(ARGV[1]), tonumber(ARGV[3])
local concurrent, per_minute = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[6]))
local refused, wait = false, 0
if per_minute > 0 and redis.call('ZCARD', KEYS[2]) >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  refused, wait = 'per_minute', tonumber(oldest[2]) + tonumber(ARGV[6]) - now
end
if concurrent > 0 and redis.call('ZCARD', KEYS[1]) >= concurrent then
  refused, wait = refused or 'concurrent', math.max(wait, 1000)
end
if refused then return {refused, wait} end

redis.call('ZADD', KEYS[1], now + lapse, ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lapse)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {'ok', 0}
"""


def active_key(tenant: str) -> str:
    """Sorted set of the tenant's queued and running jobs (scored by when a slot lapses)."""
    return ACTIVE_PREFIX + tenant


def recent_key(tenant: str) -> str:
    return f"{PREFIX}recent:{tenant}"


@dataclass(frozen=True)
class Refusal:
    limit: str  # "concurrent" or "per_minute"
    retry_after_ms: int


class Quotas:
    """`lapse_ms` frees a slot whose job vanished without finishing (its record expired)."""

    def __init__(
        self, client: redis.Redis, concurrent: int, per_minute: int, lapse_ms: int
    ) -> None:
        self.concurrent, self.per_minute, self.lapse_ms = concurrent, per_minute, lapse_ms
        self.redis = client
        self._admit = client.register_script(_ADMIT)

    def admit(self, tenant: str, job_id: str) -> Refusal | None:
        """Take a slot for `job_id`, or say which limit refuses it and for how long."""
        if not (self.concurrent or self.per_minute):
            return None
        keys = [active_key(tenant), recent_key(tenant)]
        args = [now_ms(), job_id, self.lapse_ms, self.concurrent, self.per_minute, WINDOW_MS]
        verdict, wait_ms = self._admit(keys=keys, args=args)
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        return None if verdict == "ok" else Refusal(verdict, max(int(wait_ms), 1))

    def release(self, tenant: str, job_id: str) -> None:
        """For a job that was admitted but never queued: it counts against no limit."""
        with self.redis.pipeline() as pipe:
            pipe.zrem(active_key(tenant), job_id)
            pipe.zrem(recent_key(tenant), job_id)
            pipe.execute()
