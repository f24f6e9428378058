"""Who is present: workers (for `/healthz`, fair shares and recovery) and the idle
pre-spawned processes of each pool process (for `/metrics`). Members announce
themselves with a value and count as present until they fall silent for a ttl.

Two hashes per kind rather than a key per member, so reading who is present never
scans Redis' whole keyspace (which holds every job record). Times are Redis' own
clock, so members on hosts with skewed clocks are judged alike.
"""

import json

import redis

from jobs import keys

WORKER_TTL_SECONDS = 15  # a worker beats every 5 s (tasks.heartbeat)
IDLE_TTL_SECONDS = 5  # a pool process reports every second (tasks.processes)

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
# KEYS: values, beats. ARGV: member, value, ttl (ms).
_ANNOUNCE = (
    _NOW
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], now)
local beats = redis.call('HGETALL', KEYS[2])
for i = 1, #beats, 2 do  -- forget members long silent
  if tonumber(beats[i + 1]) < now - 20 * tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], beats[i])
    redis.call('HDEL', KEYS[2], beats[i])
  end
end
"""
)
# KEYS: values, beats. ARGV: ttl (ms). Returns member, value, member, value...
_PRESENT = (
    _NOW
    + """
local beats, present = redis.call('HGETALL', KEYS[2]), {}
for i = 1, #beats, 2 do
  if tonumber(beats[i + 1]) >= now - tonumber(ARGV[1]) then
    local value = redis.call('HGET', KEYS[1], beats[i])
    if value then
      table.insert(present, beats[i])
      table.insert(present, value)
    end
  end
end
return present
"""
)


class Presence:
    def __init__(self, client: redis.Redis, key: str, ttl_ms: int) -> None:
        self.keys = [key, key + ":beats"]
        self.ttl_ms = ttl_ms
        self.redis = client
        self._announce = client.register_script(_ANNOUNCE)
        self._present = client.register_script(_PRESENT)

    def announce(self, member: str, value: str | int) -> None:
        self._announce(keys=self.keys, args=[member, value, self.ttl_ms])

    def withdraw(self, member: str) -> None:
        with self.redis.pipeline() as pipe:
            for key in self.keys:
                pipe.hdel(key, member)
            pipe.execute()

    def present(self) -> dict[str, str]:
        """Member -> value, for every member heard from within the ttl."""
        flat = [item.decode() for item in self._present(keys=self.keys, args=[self.ttl_ms])]
        return dict(zip(flat[::2], flat[1::2], strict=True))


class Workers:
    """Worker identity -> the confinement its jobs run under and its slots, for every
    worker beating now."""

    def __init__(self, client: redis.Redis) -> None:
        self.presence = Presence(client, keys.WORKERS, WORKER_TTL_SECONDS * 1000)

    def announce(self, identity: str, described: dict[str, object]) -> None:
        self.presence.announce(identity, json.dumps(described))

    def withdraw(self, identity: str) -> None:
        self.presence.withdraw(identity)

    def live(self) -> dict[str, dict[str, str | int]]:
        present = self.presence.present()
        return {identity: json.loads(present[identity]) for identity in sorted(present)}

    def slots(self) -> int:
        """Jobs the live workers run at once, all together."""
        return sum(int(info.get("slots", 0)) for info in self.live().values())


class IdleProcesses:
    """Pool process -> its idle pre-spawned processes; a process that dies falls silent."""

    def __init__(self, client: redis.Redis) -> None:
        self.presence = Presence(client, keys.IDLE_PROCESSES, IDLE_TTL_SECONDS * 1000)

    def report(self, pool_process: str, idle: int) -> None:
        self.presence.announce(pool_process, idle)

    def withdraw(self, pool_process: str) -> None:
        self.presence.withdraw(pool_process)

    def total(self) -> int:
        return sum(int(count) for count in self.presence.present().values())
