"""Benchmarks: `python -m bench --mode quick|full` (see docs/benchmarks.md)."""
