"""Side-by-side speed measurements against reference pipelines: `python -m benchmarks`."""
