"""``ofobserve demo``: the whole loop on one machine (docs/demo.md).

Real Prometheus, Alertmanager and scaler processes, the demo function's replicas as real
processes, and two stand-ins run by this package: an event source with its broker (the
load generator, Kafka and daprd's delivery) and a replica controller (KEDA and the HPA).
I/O lives in the process, broker, replica, observe and runner modules; ``scenario`` and
``timescale`` are pure.
"""
