"""``ofobserve controller``: every Function gets its artifacts applied live, and loses them
when it goes (docs/controller.md).

Pure, no I/O: :mod:`~ofobserve.controller.resources` (the kinds it manages and their API
paths), :mod:`~ofobserve.controller.desired` (a Function document and the settings in, the
objects to apply and the prune plan out), :mod:`~ofobserve.controller.workqueue` (the
rate-limited work queue) and :mod:`~ofobserve.controller.leases` (the leader-election
rules). Does I/O: :mod:`~ofobserve.kube` (the API client and the informers, shared with
the scaler), :mod:`~ofobserve.controller.election`,
:mod:`~ofobserve.controller.reconciler`, :mod:`~ofobserve.controller.ops` (the HTTP
server) and :mod:`~ofobserve.controller.command` (the flags).
"""
