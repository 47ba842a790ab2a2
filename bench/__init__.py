"""Benchmarks: the model on a GPU, the control plane under load, the per-job overhead."""
