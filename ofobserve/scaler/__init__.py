"""``ofobserve scaler``: a KEDA external scaler that scales functions on concurrency and latency.

Pure: ``config`` (scalerMetadata to settings), ``policy`` (state and sample to decision).
I/O: ``sources`` (Prometheus, direct scrape), ``engine`` (the refresh loop and snapshot),
``server`` (grpc.aio, health, reflection, TLS, shutdown), ``telemetry`` (its own metrics).
"""
