"""Benchmarks against the real test control plane; each script also runs as `python -m bench.<name>`."""
