"""``ofobserve simulate``: replay traffic through autoscaling policies in virtual time.

Pure, deterministic for a seed: :mod:`.traffic` (arrivals), :mod:`.cluster` (replicas,
slots, the queue: the event loop), :mod:`.pipeline` (what Prometheus, KEDA and the HPA
see and do), :mod:`.kpa` (Knative's KPA), :mod:`.policies` (the four policies),
:mod:`.runner` (one run of each) and :mod:`.report` (the figures, the table, the JSON).
Only :mod:`.traces` (trace files), :mod:`.history` (Prometheus history) and :mod:`.plot`
(the PNG) do I/O. docs/simulate.md describes the model.
"""
