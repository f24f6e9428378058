"""Per-job resource limits: what one job may use, whoever runs it."""

from dataclasses import dataclass

MIB = 1024 * 1024
MIN_MEMORY_MB = 64  # an idle Deno process is ~40 MiB resident


@dataclass(frozen=True)
class Limits:
    """Caps a job cannot exceed; defaults are the service's documented defaults."""

    default_timeout_ms: int = 5_000
    max_timeout_ms: int = 300_000
    heap_mb: int = 128
    memory_mb: int = 256
    max_memory_mb: int = 1_024
    cpus: float = 1.0
    max_log_lines: int = 1_000
    max_log_bytes: int = 1 * MIB
    max_result_bytes: int = 10 * MIB
    max_result_depth: int = 128  # deeper results fail as RESULT_NOT_SERIALIZABLE

    def timeout_for(self, requested_ms: int | None) -> int:
        """Clamp a requested timeout: missing means the default, large means the cap."""
        if requested_ms is None:
            return self.default_timeout_ms
        if isinstance(requested_ms, bool) or not isinstance(requested_ms, int):
            raise ValueError("timeout must be an integer number of milliseconds")
        if requested_ms < 1:
            raise ValueError("timeout must be at least 1 ms")
        return min(requested_ms, self.max_timeout_ms)

    def memory_for(self, requested_mb: int | None) -> int:
        """A job's memory cap in MiB: the default, or a request capped at the maximum."""
        if requested_mb is None:
            return self.memory_mb
        if isinstance(requested_mb, bool) or not isinstance(requested_mb, int):
            raise ValueError("memory must be an integer number of MiB")
        if requested_mb < MIN_MEMORY_MB:
            raise ValueError(f"memory must be at least {MIN_MEMORY_MB} MiB")
        return min(requested_mb, self.max_memory_mb)
