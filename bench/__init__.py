"""Benchmarks: the model on a GPU, infer's start, the per-job overhead, MP4 encoding and the
control plane's headroom over the GPU fleet."""
