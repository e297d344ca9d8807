"""Benchmarks (run from the repository root: ``python bench/ttft.py``; see bench/README.md)."""
