"""Knative Serving's own configuration that the ``knative`` profile needs. Pure, no I/O.

From Knative Serving 1.19 the queue-proxy exports request metrics only as
``config-observability``'s ``request-metrics-protocol`` says, and that defaults to ``none``
(knative/serving ``pkg/observability/config.go``, knative/pkg
``observability/metrics/config.go``): port 9091 then serves no request metrics, and every
``knativeMetrics: otel`` PodMonitor, rule and dashboard reads nothing. The fleet artifact
here is a JSON merge patch of that ConfigMap setting ``prometheus`` and removing
``request-metrics-endpoint``, which must not be set with ``prometheus``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ofobserve import conventions as c
from ofobserve.settings import Settings
from ofobserve.subject import Subject


def reads_knative_otel_metrics(subject: Subject) -> bool:
    """Whether the function's queries read the queue-proxy's >= 1.19 (OpenTelemetry) names."""
    return (
        subject.profile == c.PROFILE_KNATIVE and subject.settings.knative_metrics == c.KNATIVE_OTEL
    )


def build_knative_observability_patch(
    subjects: Sequence[Subject], settings: Settings
) -> dict[str, Any] | None:
    """The ``config-observability`` merge patch, when any rendered function needs it, for
    ``kubectl patch configmap config-observability -n knative-serving --type merge
    --patch-file FILE``. ``None`` (no file) when no function reads Knative >= 1.19 metrics.

    It carries ``apiVersion``, ``kind`` and ``metadata`` (name and namespace only: the object
    is Knative's, so no ofobserve label) so kustomize can target it too; ``null`` deletes
    the endpoint key in a merge patch and is a no-op when it is absent.
    """
    if not any(reads_knative_otel_metrics(s) for s in subjects):
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": c.KNATIVE_OBSERVABILITY_CONFIGMAP,
            "namespace": c.KNATIVE_SERVING_NAMESPACE,
        },
        "data": {
            c.KNATIVE_REQUEST_METRICS_PROTOCOL: c.KNATIVE_PROTOCOL_PROMETHEUS,
            c.KNATIVE_REQUEST_METRICS_ENDPOINT: None,
        },
    }
