"""Benchmarks run as ratios against raw Celery on the same machine."""
