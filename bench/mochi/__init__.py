"""Pieces of bench/gpu_mochi.py: models, stages, timing, speed options, report."""
