"""Job records in Redis: status, timestamps and outcome of every job, for API and workers.

Each state change is one Lua script, so a cancel racing a finish (or two
deliveries of one message) cannot both win. The store owns each job's record, the
set of running jobs' deadlines, the done and cancel channels, and the figures its
finishing script adds to (read by `jobs.stats`); that script also frees the job's
quota slot and counts its stored outcome, which `jobs.admission` takes and checks.
"""

import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from jobs import keys
from jobs.connection import connect
from jobs.notifier import Notifier
from jobs.settings import ANONYMOUS, Settings
from jobs.stats import BUCKETS_MS
from jobs.status import FINAL, KNOWN_CODES, LIVE, WORKER_LOST, JobStatus
from sandbox.limits import MIB
from sandbox.outcome import CANCELLED, OUTPUT_LIMIT_ERROR, RUNTIME_ERROR, JobError, Outcome

MAX_DELIVERIES = 2
# Of Redis's maxmemory. Above jobs.admission's ADMIT_HIGH_WATER (0.60), new jobs are
# refused; an outcome that would take Redis above this is not stored. The gap is for the
# outcomes of jobs already admitted (each briefly takes twice its size: Redis's copy of
# the request, and the record); the rest is a reserve that is never filled by results,
# for what Redis holds only briefly (requests queued in the API, large results being
# read) and the queue's bookkeeping, so that no write of Celery's is ever refused.
RESULTS_HIGH_WATER = 0.80
# Lua shared by this module's finishing script and jobs.admission's admitting one.
# memory(fallback): Redis's used_memory and its maxmemory (else `fallback`, the service's
# own bound, for a Redis that sets none), both in bytes.
# stored(set, total, now): bytes of outcomes a tenant has stored, once those that expired
# by `now` (as their records did) are forgotten.
LUA_HELPERS = """
local function memory(fallback)
  local info = redis.call('INFO', 'memory')
  local used = tonumber(string.match(info, '\\nused_memory:(%d+)') or '0')
  local limit = tonumber(string.match(info, '\\nmaxmemory:(%d+)') or '0')
  if limit == 0 then limit = tonumber(fallback) end
  return used, limit
end
local function stored(set, total, now)
  local gone = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, 1000)
  if #gone > 0 then
    local freed = 0
    for _, member in ipairs(gone) do freed = freed + tonumber(string.match(member, '^(%d+):')) end
    redis.call('ZREM', set, unpack(gone))
    if redis.call('EXISTS', set) == 0 then
      redis.call('DEL', total)
    else
      redis.call('DECRBY', total, freed)
    end
  end
  return tonumber(redis.call('GET', total) or '0')
end
"""

_START = f"""
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= '{JobStatus.QUEUED}' and status ~= '{JobStatus.RUNNING}' then return 'final' end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[3]) then return 'lost' end
redis.call('HSET', KEYS[1], 'status', '{JobStatus.RUNNING}', 'started_at', ARGV[1], 'worker', ARGV[2])
local timeout = tonumber(redis.call('HGET', KEYS[1], 'timeout_ms') or '0')
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + timeout + tonumber(ARGV[4]), ARGV[5])
return 'run'
"""
# ARGV: worker. Only a queued job is held (a record that expired is not created again).
_HOLD = f"""
if redis.call('HGET', KEYS[1], 'status') ~= '{JobStatus.QUEUED}' then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[1])
return 1
"""
# ARGV: status, now, outcome, ttl, job id, final code, memory bound (bytes) of
#       a Redis without maxmemory, results high water, stored prefix, stored bytes prefix,
#       outcome instead when Redis is too full, outcome instead when the tenant's stored
#       results are at their limit, bucket bounds (ms)...
# An outcome that would take Redis past the high water, or whose tenant already holds its
# `stored_quota` (bytes, in the record; so a tenant passes it by one outcome at most), is
# replaced by the (smaller) failure saying so: the job still ends. The outcomes of a
# tenant with a quota are counted until they expire.
_FINISH = (
    LUA_HELPERS
    + f"""
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= '{JobStatus.QUEUED}' and status ~= '{JobStatus.RUNNING}' then return status end
local final, outcome, code = ARGV[1], ARGV[3], ARGV[6]
local now, ttl_ms = tonumber(ARGV[2]), tonumber(ARGV[4]) * 1000
local owner = redis.call('HGET', KEYS[1], 'owner')
local quota = tonumber(redis.call('HGET', KEYS[1], 'stored_quota') or '0')
local set, total = ARGV[9] .. (owner or ''), ARGV[10] .. (owner or '')
local used, limit = memory(ARGV[7])
local instead = false
if limit > 0 and used + #outcome > limit * tonumber(ARGV[8]) then
  instead = ARGV[11]
elseif owner and quota > 0 and stored(set, total, now) >= quota then
  instead = ARGV[12]
end
if instead and #instead < #outcome then
  final, outcome, code = '{JobStatus.FAILED}', instead, '{OUTPUT_LIMIT_ERROR}'
end
redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[2], 'outcome', outcome)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if owner and quota > 0 then
  redis.call('ZADD', set, now + ttl_ms, #outcome .. ':' .. ARGV[5])
  redis.call('INCRBY', total, #outcome)
  redis.call('PEXPIRE', set, ttl_ms + 1000)
  redis.call('PEXPIRE', total, ttl_ms + 1000)
end
redis.call('ZREM', KEYS[4], ARGV[5])
local function observe(name, ms)
  for i = 13, #ARGV do
    if ms <= tonumber(ARGV[i]) then redis.call('HINCRBY', KEYS[5], name .. '|' .. ARGV[i], 1) end
  end
  redis.call('HINCRBY', KEYS[5], name .. '|count', 1)
  redis.call('HINCRBY', KEYS[5], name .. '|sum', ms)
end
redis.call('HINCRBY', KEYS[5], 'jobs|' .. code, 1)
local created = redis.call('HGET', KEYS[1], 'created_at')
if created then observe('total', math.max(now - tonumber(created), 0)) end
local started = redis.call('HGET', KEYS[1], 'started_at')
if started then observe('execution', math.max(now - tonumber(started), 0)) end
redis.call('PUBLISH', KEYS[2], final)
if ARGV[1] == '{JobStatus.CANCELLED}' then redis.call('PUBLISH', KEYS[3], 'cancel') end
return status
"""
)


class _OomSafeScript:
    """A state change that must be recorded even when Redis is over its maxmemory (flag
    `allow-oom`, Redis 7+), or a job could be left unfinished; the scripts keep what they
    write small then. An older Redis, which knows no flags, runs the script without one."""

    def __init__(self, client: redis.Redis, body: str) -> None:
        self._scripts = [client.register_script("#!lua flags=allow-oom\n" + body)]
        self._scripts.append(client.register_script(body))

    def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        try:
            return self._scripts[0](keys=keys, args=args)
        except redis.ResponseError as error:
            if len(self._scripts) == 1 or "compiling" not in str(error):
                raise
            self._scripts.pop(0)  # "Error compiling script": no shebang before Redis 7
            return self._scripts[0](keys=keys, args=args)


def unstored_outcome(size: int, why: str) -> bytes:
    """The failure recorded instead of an outcome of `size` bytes that was not stored."""
    message = f"The job's result ({size} bytes with its logs) was not stored: {why}"
    return json.dumps(Outcome(error=JobError(OUTPUT_LIMIT_ERROR, message)).to_dict()).encode()


def code_class(outcome: Outcome) -> str:
    """ "OK", the failure's code if the service chose it, else RUNTIME_ERROR: whatever
    code the user's function threw (unbounded, and free to spell a service code) counts
    as a user error."""
    if outcome.error is None:
        return "OK"
    code = outcome.error.code
    return code if code in KNOWN_CODES and not outcome.error.thrown else RUNTIME_ERROR


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: str | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: JobStatus
    timeout_ms: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    outcome: Outcome | None
    owner: str = ANONYMOUS

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_dict(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "timeout": self.timeout_ms,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }
        if self.outcome is not None:
            if self.outcome.error is not None:
                view["error"] = self.outcome.error.to_dict()
            elif self.outcome.returned:  # undefined: no `result`, as in the original's answer
                view["result"] = self.outcome.result
            view["logs"] = self.outcome.logs
        return view


class JobStore:
    def __init__(
        self,
        client: redis.Redis,
        result_ttl: int,
        pending_ttl: int,
        overdue_grace_ms: int = 60_000,
        memory_limit: int = 0,
    ) -> None:
        """`memory_limit` (bytes) bounds Redis's memory where the server sets no maxmemory
        (0: unbounded); a server's own maxmemory always wins."""
        self.redis = client
        self.overdue_grace_ms = overdue_grace_ms
        self.result_ttl = result_ttl
        self.pending_ttl = pending_ttl
        self.memory_limit = memory_limit
        self._start = _OomSafeScript(client, _START)
        self._finish = _OomSafeScript(client, _FINISH)
        self._hold = _OomSafeScript(client, _HOLD)
        self._notifier = Notifier(client, keys.DONE_PATTERN)

    key = staticmethod(keys.job)
    cancel_channel = staticmethod(keys.cancel_channel)
    done_channel = staticmethod(keys.done_channel)

    @staticmethod
    def new_record(
        timeout_ms: int, owner: str, created_ms: int, stored_quota: int = 0
    ) -> dict[str, str | int]:
        """The fields of a job's record when it is queued (jobs.admission creates it).
        `stored_quota`: bytes of outcomes its owner may keep stored (0: no limit)."""
        record: dict[str, str | int] = {
            "status": JobStatus.QUEUED,
            "timeout_ms": timeout_ms,
            "created_at": created_ms,
            "attempts": 0,
            "owner": owner,
        }
        return record | ({"stored_quota": stored_quota} if stored_quota else {})

    def start(self, job_id: str, worker: str) -> str:
        """'run' if this delivery should run the job; 'final', 'missing' or 'lost' if not."""
        args = [now_ms(), worker, MAX_DELIVERIES, self.overdue_grace_ms, job_id]
        verdict = self._start(keys=[self.key(job_id), keys.RUNNING_DEADLINES], args=args)
        return verdict.decode() if isinstance(verdict, bytes) else verdict

    def fail_overdue(self) -> list[str]:
        """Fail running jobs long past their time limit: whatever ran them is gone
        without a trace (e.g. Celery's hard limit killed it), so none will finish them."""
        deadlines = keys.RUNNING_DEADLINES
        overdue = [v.decode() for v in self.redis.zrangebyscore(deadlines, 0, now_ms())]
        lost = Outcome(
            error=JobError(WORKER_LOST, "The job outlived its time limit: its worker was lost")
        )
        for job_id in overdue:
            self._transition(job_id, JobStatus.FAILED, lost)
            self.redis.zrem(deadlines, job_id)
        return overdue

    def hold(self, job_id: str, worker: str) -> bool:
        """The worker (its main process) was delivered the job's message: it holds the job
        until it starts it. False if the job is not queued."""
        return bool(self._hold(keys=[self.key(job_id)], args=[worker]))

    def requeued(self, job_id: str) -> None:
        """A job whose worker died (running it, or holding it) is back in the queue: no
        deadline runs for it, and no worker holds it."""
        self.redis.zrem(keys.RUNNING_DEADLINES, job_id)
        self.redis.hdel(self.key(job_id), "holder")

    def running(self) -> int:
        """Jobs running now (each has a deadline until it ends or is requeued)."""
        return self.redis.zcard(keys.RUNNING_DEADLINES)

    def owner(self, job_id: str) -> str:
        """The tenant whose job it is."""
        owner = self.redis.hget(self.key(job_id), "owner")
        return owner.decode() if owner is not None else ANONYMOUS

    def set_pid(self, job_id: str, pid: int) -> None:
        """Which Deno process runs the job: for operators (and tests), not in the API."""
        with contextlib.suppress(redis.exceptions.OutOfMemoryError):  # not worth failing over
            self.redis.hset(self.key(job_id), "pid", pid)

    def finish(self, job_id: str, outcome: Outcome) -> bool:
        """Record the outcome unless the job already ended (e.g. was cancelled)."""
        if outcome.error is None:
            status = JobStatus.SUCCEEDED
        elif outcome.error.code == CANCELLED and not outcome.error.thrown:
            status = JobStatus.CANCELLED
        else:
            status = JobStatus.FAILED
        previous = self._transition(job_id, status, outcome)
        return previous in LIVE

    def cancel(self, job_id: str) -> JobStatus | None:
        """Cancel a queued or running job; the status it had before, None if unknown."""
        outcome = Outcome(error=JobError(CANCELLED, "Job was cancelled"))
        return self._transition(job_id, JobStatus.CANCELLED, outcome)

    def _transition(self, job_id: str, status: JobStatus, outcome: Outcome) -> JobStatus | None:
        names = [self.key(job_id), self.done_channel(job_id), self.cancel_channel(job_id)]
        names += [keys.RUNNING_DEADLINES, keys.METRICS]
        payload = json.dumps(outcome.to_record(), ensure_ascii=False)
        args = [status, now_ms(), payload, self.result_ttl, job_id, code_class(outcome)]
        size = len(payload.encode())
        args += [self.memory_limit, RESULTS_HIGH_WATER, keys.STORED_PREFIX]
        args.append(keys.STORED_BYTES_PREFIX)
        args.append(unstored_outcome(size, "the result store (Redis) is full; retry later"))
        why = "this API key's stored results are at their limit; retry once older ones expire"
        args.append(unstored_outcome(size, why))
        args += BUCKETS_MS
        previous = self._finish(keys=names, args=args)
        if previous is None:
            return None
        return JobStatus(previous.decode() if isinstance(previous, bytes) else previous)

    def get(self, job_id: str) -> JobRecord | None:
        fields = {k.decode(): v.decode() for k, v in self.redis.hgetall(self.key(job_id)).items()}
        if "status" not in fields:
            return None
        raw = fields.get("outcome")
        return JobRecord(
            id=job_id,
            status=JobStatus(fields["status"]),
            timeout_ms=int(fields.get("timeout_ms", 0)),
            created_at=fields.get("created_at"),
            started_at=fields.get("started_at"),
            finished_at=fields.get("finished_at"),
            outcome=Outcome.from_dict(json.loads(raw)) if raw else None,
            owner=fields.get("owner", ANONYMOUS),
        )

    def stop_waiting(self) -> None:
        """This process is stopping: every `wait`, now and later, returns at once."""
        self._notifier.release()

    @property
    def stopping(self) -> bool:
        return self._notifier.released

    def wait(
        self, job_id: str, seconds: float, until: frozenset[JobStatus] = FINAL
    ) -> JobRecord | None:
        """The record once its status is in `until`, or as it is when `seconds` run out
        (or when the process stops: `stop_waiting`)."""
        deadline = time.monotonic() + seconds
        channel = self.done_channel(job_id)
        event = self._notifier.watch(channel)
        try:
            while True:
                record = self.get(job_id)
                remaining = deadline - time.monotonic()
                stopping = self._notifier.released
                if record is None or record.status in until or remaining <= 0 or stopping:
                    return record
                event.wait(remaining)
                event.clear()
        finally:
            self._notifier.unwatch(channel, event)


def store_for(settings: Settings, client: redis.Redis | None = None) -> JobStore:
    """The job store as `settings` configure it, on `client` or a new connection."""
    if client is None:
        client = connect(settings.redis_url, settings.redis_sentinel_master)
    pending_ttl = settings.result_ttl_seconds + settings.visibility_timeout_seconds
    grace_ms = (settings.task_time_margin_seconds + 60) * 1000  # past Celery's hard limit
    memory_limit = settings.redis_maxmemory_mb * MIB  # where Redis sets no maxmemory itself
    return JobStore(client, settings.result_ttl_seconds, pending_ttl, grace_ms, memory_limit)
