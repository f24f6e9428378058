"""Benchmarks: `make bench` prints every figure measured side by side in one run."""
