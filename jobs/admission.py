"""Admitting a job, in one atomic step: the queue has room, Redis has memory to spare,
the tenant's quotas (jobs in flight, submissions per minute, bytes of results stored)
allow it, and its record is created.

The counts live in Redis, so every API process enforces the same limits, and no
crash between checking and creating can leave a slot taken without a record. A
tenant's slots are this module's alone: a job takes one here, and holds it until this
script, counting, finds its record ended (whichever way) or gone.
"""

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jobs import keys
from jobs.status import JobStatus
from jobs.store import LUA_HELPERS, JobStore, now_ms

WINDOW_MS = 60_000
# Of Redis's maxmemory: above it, new jobs are refused. Below the store's
# RESULTS_HIGH_WATER, above which an outcome is not stored (the gap is explained there).
ADMIT_HIGH_WATER = 0.60
# KEYS: queue, active set, recent set, job record, stored set, stored bytes.
# ARGV: now, job id, slot lapse (ms), concurrent, per minute, window (ms), max queue depth,
#       record ttl (s), memory bound (bytes) of a Redis without maxmemory, admission high
#       water, stored bytes quota, job record key prefix, bytes the job's message will
#       take, then the record's fields as name, value pairs.
# Refusals for memory and stored bytes also return what is used and what is allowed.
_ADMIT = (
    LUA_HELPERS
    + """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[7]) then return {'queue', 0} end
local used, limit = memory(ARGV[9])
if limit > 0 and used + tonumber(ARGV[13]) >= limit * tonumber(ARGV[10]) then
  return {'memory', 0, used, limit}
end
local now, lapse, window = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[6])
local concurrent, per_minute = tonumber(ARGV[4]), tonumber(ARGV[5])
local stored_quota = tonumber(ARGV[11])
if stored_quota > 0 then
  local held = stored(KEYS[5], KEYS[6], now)
  if held >= stored_quota then
    local left, wait = held, 1000
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 99, 'WITHSCORES')
    for i = 1, #oldest, 2 do
      left = left - tonumber(string.match(oldest[i], '^(%d+):'))
      wait = math.max(tonumber(oldest[i + 1]) - now, 1000)
      if left < stored_quota then break end
    end
    return {'stored', wait, held, stored_quota}
  end
end
if concurrent > 0 or per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if concurrent > 0 then  -- at most `concurrent` slots to look at: those still held count
    for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local status = redis.call('HGET', ARGV[12] .. id, 'status')
      if status ~= 'QUEUED' and status ~= 'RUNNING' then redis.call('ZREM', KEYS[2], id) end
    end
  end
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
  if concurrent > 0 then
    redis.call('ZADD', KEYS[2], now + lapse, ARGV[2])
    redis.call('PEXPIRE', KEYS[2], lapse)
  end
  redis.call('ZADD', KEYS[3], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[3], window)
end
redis.call('HSET', KEYS[4], unpack(ARGV, 14))
redis.call('EXPIRE', KEYS[4], ARGV[8])
return {'ok', 0}
""".replace("'QUEUED'", f"'{JobStatus.QUEUED}'").replace("'RUNNING'", f"'{JobStatus.RUNNING}'")
)


@dataclass(frozen=True)
class Refusal:
    limit: str  # "queue", "memory", "concurrent", "per_minute" or "stored"
    allowed: int  # that limit's value (bytes for "memory" and "stored")
    retry_after_ms: int
    used: int = 0  # for "memory" and "stored": bytes in use
    incoming: int = 0  # for "memory": the job's own message, if it is what crosses the limit


class SlotShare:
    """The default concurrent quota of a key: `percent` of the slots of the live workers
    (at least 1), so one key's jobs cannot take every slot while another key waits; 0
    (no limit) while no worker is live. `slots` is read at most every `ttl` seconds."""

    def __init__(self, percent: int, slots: Callable[[], int], ttl: float = 2.0) -> None:
        self.percent, self._slots, self.ttl = percent, slots, ttl
        self._lock = threading.Lock()
        self._value, self._read_at = 0, float("-inf")

    def __call__(self) -> int:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    slots = self._slots()
                except Exception:  # Redis away: admission reports it; keep the last value
                    return self._value
                self._value = max(1, slots * self.percent // 100) if slots else 0
                self._read_at = time.monotonic()
            return self._value


class Admission:
    """Limits of 0 mean none; `tenant_quotas` holds a tenant's own `concurrent` and
    `per_minute`, where they differ from the defaults. A slot whose job vanished without
    ending (its record expired) lapses with the record. `stored_bytes`: bytes of outcomes
    a tenant may keep stored; new jobs are refused while it holds that many. Redis's
    memory is bounded by its maxmemory, else by the store's `memory_limit`."""

    def __init__(
        self,
        store: JobStore,
        queue: str,
        max_depth: int,
        concurrent: int,
        per_minute: int,
        tenant_quotas: Mapping[str, Mapping[str, int]] | None = None,
        share: Callable[[], int] | None = None,
        stored_bytes: int = 0,
    ) -> None:
        self.store, self.queue, self.max_depth = store, queue, max_depth
        self.defaults = {"concurrent": concurrent, "per_minute": per_minute}
        self.defaults["stored_bytes"] = stored_bytes
        self.tenant_quotas = tenant_quotas or {}
        self.share = share  # a tenant's concurrent limit when it has none, nor a default
        self._admit = store.redis.register_script(_ADMIT)

    def quotas(self, tenant: str) -> dict[str, int]:
        own = dict(self.tenant_quotas.get(tenant, {}))
        quotas = self.defaults | own
        if self.share is not None and quotas["concurrent"] == 0 and "concurrent" not in own:
            quotas["concurrent"] = self.share()
        return quotas

    def admit(
        self, job_id: str, timeout_ms: int, tenant: str, message_bytes: int = 0
    ) -> Refusal | None:
        """Create the job's record, or say which limit refuses it and for how long.
        `message_bytes`: what the job's message will add to Redis once queued, counted
        against the memory high water with what Redis already holds."""
        now, store, quotas = now_ms(), self.store, self.quotas(tenant)
        names = [self.queue, keys.active(tenant), keys.recent(tenant), store.key(job_id)]
        names += [keys.stored(tenant), keys.stored_bytes(tenant)]
        args = [now, job_id, store.pending_ttl * 1000, quotas["concurrent"], quotas["per_minute"]]
        args += [WINDOW_MS, self.max_depth, store.pending_ttl]
        args += [store.memory_limit, ADMIT_HIGH_WATER, quotas["stored_bytes"], keys.job("")]
        args.append(message_bytes)
        record = store.new_record(timeout_ms, tenant, now, quotas["stored_bytes"])
        for name, value in record.items():
            args += [name, value]
        verdict, wait_ms, *figures = self._admit(keys=names, args=args)
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        if verdict == "ok":
            return None
        if verdict in ("memory", "stored"):
            used, allowed = (int(figure) for figure in figures)
            crossed_by_it = verdict == "memory" and used < allowed * ADMIT_HIGH_WATER
            incoming = message_bytes if crossed_by_it else 0
            return Refusal(verdict, allowed, max(int(wait_ms), 0), used, incoming)
        allowed = self.max_depth if verdict == "queue" else quotas[verdict]
        return Refusal(verdict, allowed, max(int(wait_ms), 0))

    def withdraw(self, job_id: str, tenant: str) -> None:
        """For an admitted job that could not be queued: it counts against no limit."""
        with self.store.redis.pipeline() as pipe:
            pipe.zrem(keys.active(tenant), job_id)
            pipe.zrem(keys.recent(tenant), job_id)
            pipe.delete(self.store.key(job_id))
            pipe.execute()
