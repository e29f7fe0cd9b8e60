"""Serving simulation: arrivals, continuous batching with a KV cache, latency percentiles."""
