"""Job records in Redis: status, timestamps and outcome of every job, for API and workers.

Each state change is one Lua script, so a cancel racing a finish (or two
deliveries of one message) cannot both win.
"""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from sandbox import Outcome
from sandbox.outcome import CANCELLED, RUNTIME_ERROR, SERVICE_CODES, Failure
from settings import ANONYMOUS
from tasks.notify import Notifier

PREFIX = "exec:"
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED_STATUS = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED_STATUS})
WORKER_LOST = "WORKER_LOST"
KNOWN_CODES = SERVICE_CODES | {WORKER_LOST, "OK"}
MAX_DELIVERIES = 2
RUNNING_DEADLINES = PREFIX + "running"  # sorted set: job id -> when it must have finished
ACTIVE_PREFIX = PREFIX + "active:"  # + tenant: sorted sets of jobs in flight, for quotas
METRICS_KEY = PREFIX + "metrics"  # hash: counters and histogram buckets of ended jobs
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)


_START = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'running' then return 'final' end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[3]) then return 'lost' end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'worker', ARGV[2])
local timeout = tonumber(redis.call('HGET', KEYS[1], 'timeout_ms') or '0')
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + timeout + tonumber(ARGV[4]), ARGV[5])
return 'run'
"""
# ARGV: status, now, outcome, ttl, job id, final code, active prefix, bucket bounds (ms)...
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'queued' and status ~= 'running' then return status end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2], 'outcome', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[5])
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then redis.call('ZREM', ARGV[7] .. owner, ARGV[5]) end
local function observe(name, ms)
  for i = 8, #ARGV do
    if ms <= tonumber(ARGV[i]) then redis.call('HINCRBY', KEYS[5], name .. '|' .. ARGV[i], 1) end
  end
  redis.call('HINCRBY', KEYS[5], name .. '|count', 1)
  redis.call('HINCRBY', KEYS[5], name .. '|sum', ms)
end
redis.call('HINCRBY', KEYS[5], 'jobs|' .. ARGV[6], 1)
local now = tonumber(ARGV[2])
local created = redis.call('HGET', KEYS[1], 'created_at')
if created then observe('total', math.max(now - tonumber(created), 0)) end
local started = redis.call('HGET', KEYS[1], 'started_at')
if started then observe('execution', math.max(now - tonumber(started), 0)) end
redis.call('PUBLISH', KEYS[2], ARGV[1])
if ARGV[1] == 'cancelled' then redis.call('PUBLISH', KEYS[3], 'cancel') end
return status
"""


def code_class(outcome: Outcome) -> str:
    """ "OK", the failure's code if the service chose it, else RUNTIME_ERROR: codes of
    errors the user's function threw are unbounded, so figures and log fields group them."""
    code = "OK" if outcome.error is None else outcome.error.code
    return code if code in KNOWN_CODES else RUNTIME_ERROR


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
    status: str
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
            if self.outcome.error is None:
                view["result"] = self.outcome.result
            else:
                view["error"] = self.outcome.error.to_dict()
            view["logs"] = self.outcome.logs
        return view


class JobStore:
    def __init__(
        self, client: redis.Redis, result_ttl: int, pending_ttl: int, overdue_grace_ms: int = 60_000
    ) -> None:
        self.redis = client
        self.overdue_grace_ms = overdue_grace_ms
        self.result_ttl = result_ttl
        self.pending_ttl = pending_ttl
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)
        self._notifier = Notifier(client, PREFIX + "done:*")

    @staticmethod
    def key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    @staticmethod
    def cancel_channel(job_id: str) -> str:
        return f"{PREFIX}cancel:{job_id}"

    @staticmethod
    def done_channel(job_id: str) -> str:
        return f"{PREFIX}done:{job_id}"

    @staticmethod
    def new_record(timeout_ms: int, owner: str, created_ms: int) -> dict[str, str | int]:
        """The fields of a job's record when it is queued (tasks.admission creates it)."""
        return {
            "status": QUEUED,
            "timeout_ms": timeout_ms,
            "created_at": created_ms,
            "attempts": 0,
            "owner": owner,
        }

    def delete(self, job_id: str) -> None:
        self.redis.delete(self.key(job_id))

    def start(self, job_id: str, worker: str) -> str:
        """'run' if this delivery should run the job; 'final', 'missing' or 'lost' if not."""
        args = [now_ms(), worker, MAX_DELIVERIES, self.overdue_grace_ms, job_id]
        verdict = self._start(keys=[self.key(job_id), RUNNING_DEADLINES], args=args)
        return verdict.decode() if isinstance(verdict, bytes) else verdict

    def fail_overdue(self) -> list[str]:
        """Fail running jobs long past their time limit: whatever ran them is gone
        without a trace (e.g. Celery's hard limit killed it), so none will finish them."""
        overdue = [v.decode() for v in self.redis.zrangebyscore(RUNNING_DEADLINES, 0, now_ms())]
        lost = Outcome(
            error=Failure(WORKER_LOST, "The job outlived its time limit: its worker was lost")
        )
        for job_id in overdue:
            self._transition(job_id, FAILED, lost)
            self.redis.zrem(RUNNING_DEADLINES, job_id)
        return overdue

    def set_pid(self, job_id: str, pid: int) -> None:
        """Which Deno process runs the job: for operators (and tests), not in the API."""
        self.redis.hset(self.key(job_id), "pid", pid)

    def finish(self, job_id: str, outcome: Outcome) -> bool:
        """Record the outcome unless the job already ended (e.g. was cancelled)."""
        if outcome.error is None:
            status = SUCCEEDED
        elif outcome.error.code == CANCELLED:
            status = CANCELLED_STATUS
        else:
            status = FAILED
        previous = self._transition(job_id, status, outcome)
        return previous in (QUEUED, RUNNING)

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job; the status it had before, None if unknown."""
        outcome = Outcome(error=Failure(CANCELLED, "Job was cancelled"))
        return self._transition(job_id, CANCELLED_STATUS, outcome)

    def _transition(self, job_id: str, status: str, outcome: Outcome) -> str | None:
        keys = [self.key(job_id), self.done_channel(job_id), self.cancel_channel(job_id)]
        keys += [RUNNING_DEADLINES, METRICS_KEY]
        payload = json.dumps(outcome.to_dict(), ensure_ascii=False)
        args = [status, now_ms(), payload, self.result_ttl, job_id, code_class(outcome)]
        args.append(ACTIVE_PREFIX)
        args += BUCKETS_MS
        previous = self._finish(keys=keys, args=args)
        return previous.decode() if isinstance(previous, bytes) else previous

    def get(self, job_id: str) -> JobRecord | None:
        fields = {k.decode(): v.decode() for k, v in self.redis.hgetall(self.key(job_id)).items()}
        if "status" not in fields:
            return None
        raw = fields.get("outcome")
        return JobRecord(
            id=job_id,
            status=fields["status"],
            timeout_ms=int(fields.get("timeout_ms", 0)),
            created_at=fields.get("created_at"),
            started_at=fields.get("started_at"),
            finished_at=fields.get("finished_at"),
            outcome=Outcome.from_dict(json.loads(raw)) if raw else None,
            owner=fields.get("owner", ANONYMOUS),
        )

    def wait(self, job_id: str, seconds: float, until: frozenset[str] = FINAL) -> JobRecord | None:
        """The record once its status is in `until`, or as it is when `seconds` run out."""
        deadline = time.monotonic() + seconds
        channel = self.done_channel(job_id)
        event = self._notifier.watch(channel)
        try:
            while True:
                record = self.get(job_id)
                remaining = deadline - time.monotonic()
                if record is None or record.status in until or remaining <= 0:
                    return record
                event.wait(remaining)
                event.clear()
        finally:
            self._notifier.unwatch(channel, event)
