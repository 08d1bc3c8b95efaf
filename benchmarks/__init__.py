"""Benchmarks of analytics-core against a real TimescaleDB, reported as ratios to baselines.

``python -m benchmarks.run`` (``make bench``) runs every benchmark and writes
``docs/BENCHMARKS.md``. Each benchmark is one module with a ``run`` function that returns a
frozen result; ``benchmarks.report`` renders them. Every figure is a ratio against a baseline
measured interleaved with it in the same run, so a noisy machine moves both sides together;
absolute numbers are shown only as context.

- ``ingest``: client throughput against a bare binary COPY (the ceiling) and an
  ``executemany`` INSERT (the common alternative).
- ``latency``: what ``track()`` costs its caller, against an enqueue on a ``SimpleQueue``.
- ``migrations``: the ``analytics-migrate`` command, against a process that connects and quits.
- ``aggregates``: answers read from the aggregates, against the same answers computed from
  the raw events table.
"""
