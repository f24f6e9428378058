"""Every setting of the service, read from environment variables in this one place.

Each variable is listed in the README with its default. The sandbox takes its
`Limits` as an argument and never reads the environment itself.
"""

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.limits import MIB, Limits


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_sentinel_master: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 3333
    api_processes: int = 2
    api_connections: int = 4_096  # per API process: open connections served at once
    api_read_timeout_seconds: int = 10  # a request head must arrive whole, each body read
    max_body_bytes: int = 5 * MIB
    max_payload_depth: int = 64  # levels of objects and arrays, the payload itself included
    max_queue_depth: int = 1_000
    queue_wait_ms: int = 10_000
    result_ttl_seconds: int = 3_600
    redis_maxmemory_mb: int = 512  # 0: Redis memory is not bounded
    stored_results_mb_per_key: int = 128  # 0: no limit
    worker_concurrency: int | None = None  # None: from memory (tasks.capacity)
    worker_memory_mb: int | None = None  # None: a fraction of what the machine can give
    worker_max_concurrency: int = 32
    worker_max_memory_kib: int = 256 * 1024
    task_time_margin_seconds: int = 5
    prespawn: int = 1
    allow_weak_confinement: bool = True  # False: a worker without every wall will not start
    queue_name: str = "sandbox"
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)  # key -> tenant
    quota_concurrent: int = 0  # 0: no limit
    quota_per_minute: int = 0
    quota_share_percent: int = 50  # of the live slots, for keys without a concurrent quota
    tenant_quotas: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # overrides
    limits: Limits = Limits()

    @property
    def visibility_timeout_seconds(self) -> int:
        """Longer than a job can wait reserved plus run, so no job is delivered twice."""
        return 2 * (self.limits.max_timeout_ms // 1000 + self.task_time_margin_seconds) + 60


_INTS = {
    "API_PORT": "api_port",
    "API_PROCESSES": "api_processes",
    "API_CONNECTIONS": "api_connections",
    "API_READ_TIMEOUT_SECONDS": "api_read_timeout_seconds",
    "MAX_BODY_BYTES": "max_body_bytes",
    "MAX_PAYLOAD_DEPTH": "max_payload_depth",
    "MAX_QUEUE_DEPTH": "max_queue_depth",
    "QUEUE_WAIT_MS": "queue_wait_ms",
    "RESULT_TTL_SECONDS": "result_ttl_seconds",
    "WORKER_CONCURRENCY": "worker_concurrency",
    "WORKER_MEMORY_MB": "worker_memory_mb",
    "WORKER_MAX_CONCURRENCY": "worker_max_concurrency",
    "WORKER_MAX_MEMORY_KIB": "worker_max_memory_kib",
    "TASK_TIME_MARGIN_SECONDS": "task_time_margin_seconds",
    "PRESPAWN": "prespawn",
}
_LIMIT_INTS = {
    "JOB_DEFAULT_TIMEOUT_MS": "default_timeout_ms",
    "JOB_MAX_TIMEOUT_MS": "max_timeout_ms",
    "JOB_HEAP_MB": "heap_mb",
    "JOB_MEMORY_MB": "memory_mb",
    "JOB_MAX_MEMORY_MB": "max_memory_mb",
    "JOB_MAX_LOG_LINES": "max_log_lines",
    "JOB_MAX_LOG_BYTES": "max_log_bytes",
    "JOB_MAX_RESULT_BYTES": "max_result_bytes",
}
_COUNTS = {  # 0 allowed: no limit
    "QUOTA_CONCURRENT": "quota_concurrent",
    "QUOTA_PER_MINUTE": "quota_per_minute",
    "QUOTA_SHARE_PERCENT": "quota_share_percent",
    "REDIS_MAXMEMORY_MB": "redis_maxmemory_mb",
    "STORED_RESULTS_MB_PER_KEY": "stored_results_mb_per_key",
}
_STRINGS = {
    "REDIS_URL": "redis_url",
    "REDIS_SENTINEL_MASTER": "redis_sentinel_master",
    "API_HOST": "api_host",
    "QUEUE_NAME": "queue_name",
}


_BOOLS = {"ALLOW_WEAK_CONFINEMENT": "allow_weak_confinement"}


def _bool(env: Mapping[str, str], name: str) -> bool:
    value = env[name].strip().lower()
    if value not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, not {env[name]!r}")
    return value == "1"


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        value = int(env[name])
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {env[name]!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _count(env: Mapping[str, str], name: str) -> int:
    return 0 if env[name].strip() == "0" else _int(env, name)


MIN_KEY_LENGTH = 16
# Python's JSON parser and pickle recurse once or twice per level, against a limit of
# 1,000 frames: payloads nested deeper than this could not cross every process safely.
MAX_PAYLOAD_DEPTH_LIMIT = 256
ANONYMOUS = "anonymous"  # the one tenant of a service without keys
QUOTA_OPTIONS = ("concurrent", "per_minute")


def api_keys(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Key -> tenant name, and tenant -> its own quotas, from `API_KEYS` (comma-separated)
    and the lines of `API_KEYS_FILE`.

    An entry is `name:key`, or a bare `key` (without `:`) whose tenant is then named
    after its hash, optionally followed by `concurrent=N` and/or `per_minute=N`.
    """
    entries = env.get("API_KEYS", "").split(",")
    if env.get("API_KEYS_FILE"):
        try:
            lines = Path(env["API_KEYS_FILE"]).read_text().splitlines()
        except OSError as error:
            raise ValueError(f"API_KEYS_FILE cannot be read: {error}") from None
        entries += [line for line in lines if not line.lstrip().startswith("#")]
    keys: dict[str, str] = {}
    quotas: dict[str, dict[str, int]] = {}
    for entry in filter(None, (e.strip() for e in entries)):
        head, *options = entry.split()
        key, name = _entry(head)
        if key in keys:
            raise ValueError(f"API key of {name!r} is listed twice")
        if name in keys.values():  # jobs and quotas belong to the name: one key per name
            raise ValueError(f"API key name {name!r} is used twice")
        keys[key] = name
        if options:
            quotas[name] = _quota_options(name, options)
    return keys, quotas


def _entry(entry: str) -> tuple[str, str]:
    """(key, tenant) of one `name:key` or bare `key` entry."""
    name, colon, key = entry.partition(":")
    if colon and not key:
        raise ValueError(f"API key of {name!r} is empty (write name:key, without spaces)")
    if not colon:
        name, key = "key-" + hashlib.sha256(name.encode()).hexdigest()[:8], name
    elif name == ANONYMOUS or name.startswith("key-"):
        raise ValueError(f"API key name {name!r} is reserved")
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"API key of {name!r} is shorter than {MIN_KEY_LENGTH} characters")
    return key, name


def _quota_options(name: str, options: list[str]) -> dict[str, int]:
    quotas = {}
    for option in options:
        option_name, _, value = option.partition("=")
        if option_name not in QUOTA_OPTIONS or not value.isdigit():
            raise ValueError(f"API key of {name!r}: {option!r} is not concurrent=N or per_minute=N")
        quotas[option_name] = int(value)
    return quotas


def load(env: Mapping[str, str] = os.environ) -> Settings:
    """Settings from `env`; a malformed value stops start-up with a message naming it."""
    values: dict[str, object] = {f: env[n] for n, f in _STRINGS.items() if env.get(n)}
    values |= {f: _int(env, n) for n, f in _INTS.items() if env.get(n)}
    values |= {f: _count(env, n) for n, f in _COUNTS.items() if env.get(n)}
    values |= {f: _bool(env, n) for n, f in _BOOLS.items() if env.get(n)}
    limits = {f: _int(env, n) for n, f in _LIMIT_INTS.items() if env.get(n)}
    if values.get("max_payload_depth", 0) > MAX_PAYLOAD_DEPTH_LIMIT:  # type: ignore[operator]
        raise ValueError(f"MAX_PAYLOAD_DEPTH must be at most {MAX_PAYLOAD_DEPTH_LIMIT}")
    if values.get("quota_share_percent", 0) > 100:  # type: ignore[operator]
        raise ValueError("QUOTA_SHARE_PERCENT must be at most 100")
    keys, quotas = api_keys(env)
    return Settings(**values, api_keys=keys, tenant_quotas=quotas, limits=Limits(**limits))  # type: ignore[arg-type]
