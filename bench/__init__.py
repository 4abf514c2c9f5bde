"""Backstop's benchmark suite: gas, O(1) socialization, keeper timings, fuzz throughput.

Run with ``make bench`` (or ``python -m bench.run`` inside the venv); see ``docs/benchmarks.md``.
"""
