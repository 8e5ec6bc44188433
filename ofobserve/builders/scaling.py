"""KEDA wiring that points a function at the ofobserve scaler. Pure, no I/O.

Two forms (``scaling.delivery``), both with an ``external-push`` trigger whose metadata the
scaler reads (docs/scaling.md), an HPA ``behavior`` that does not smooth a second time (the
scaler has its own windows, delay and rate limits) and a static ``fallback`` for when the
scaler is unavailable (KEDA 2.10's: ``failureThreshold`` and ``replicas`` only):

- ``function-patch`` (default): a merge patch of the Function's
  ``spec.serving.scaleOptions.keda``, which OpenFunction copies into the ScaledObject it
  makes. The function's own triggers are kept verbatim beside ours, so activation from zero
  stays with the event source. Async functions of ``core.openfunction.io/v1beta2`` only.
- ``scaled-object``: a standalone ScaledObject ``ofobserve-<name>``; it needs the workload's
  generated name, so only with ``--from-cluster``.

With ``scaling.tlsSecret`` a TriggerAuthentication hands KEDA the client certificate.
:func:`why_not_wired` names what is left out and why: Knative functions keep Knative's
autoscaler, ``keda-http`` ones the HTTP add-on's, a cron function without a KEDA trigger
keeps its fixed replicas, and a function OpenFunction already gives a ScaledObject gets no
second one. A function with no KEDA trigger of its own is never wired to scale to zero:
nothing would wake it.
"""

from __future__ import annotations

import json
from typing import Any

from ofobserve import conventions as c
from ofobserve.builders.common import metadata, object_name
from ofobserve.model import Runtime
from ofobserve.slo import plain
from ofobserve.subject import Subject

KEDA_API = "keda.sh/v1alpha1"
TRIGGER_TYPE = "external-push"
TRIGGER_NAME = "ofobserve"
FALLBACK_FAILURES = 3
#: The HPA follows the scaler at once: no stabilisation, large steps allowed both ways.
HPA_BEHAVIOR = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 15}],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    },
}


def scaler_metadata(subject: Subject) -> dict[str, str]:
    """The trigger's metadata: everything the scaler needs, as strings."""
    f, s = subject.function, subject.settings.scaling
    lo, hi = _min_replicas(subject), _max_replicas(subject)
    found = {
        "scalerAddress": s.scaler_address,
        "namespace": f.namespace,
        "function": f.name,
        "profile": subject.profile,
        "targetConcurrency": plain(s.target_concurrency),
        "targetUtilization": plain(s.target_utilization),
        "latencyQuantile": plain(s.latency_quantile),
    }
    if subject.profile == c.PROFILE_KNATIVE:
        found["knativeMetrics"] = subject.settings.knative_metrics
    if s.latency_objective is not None:
        found["latencyObjective"] = plain(s.latency_objective)
    if lo is not None:
        found["minReplicas"] = str(lo)
    if hi is not None:
        found["maxReplicas"] = str(hi)
    return found


def _trigger(subject: Subject) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "type": TRIGGER_TYPE,
        "name": TRIGGER_NAME,
        "metadata": scaler_metadata(subject),
    }
    if subject.settings.scaling.tls_secret:
        trigger["authenticationRef"] = {"name": auth_name(subject)}
    return trigger


def _min_replicas(subject: Subject) -> int | None:
    """The floor the wiring gives: the settings', else the Function's; at least 1 for a
    function with no KEDA trigger of its own, which nothing else could wake from zero."""
    s, f = subject.settings.scaling, subject.function
    lo = s.min_replicas if s.min_replicas is not None else f.scale.min_replicas
    if not f.scale.triggers:
        return max(lo or 0, 1)
    return lo


def _max_replicas(subject: Subject) -> int | None:
    s, f = subject.settings.scaling, subject.function
    return s.max_replicas if s.max_replicas is not None else f.scale.max_replicas


def _fallback(subject: Subject) -> dict[str, Any]:
    """KEDA's static fallback (KEDA 2.10, which OpenFunction pins, has no ``behavior``):
    while the scaler fails, our trigger stands at ``replicas`` and the function's own
    triggers still scale it; without a fallback KEDA would scale it to zero."""
    replicas = subject.settings.scaling.fallback_replicas
    if replicas is None:
        replicas = max(_min_replicas(subject) or 0, 1)
    return {"failureThreshold": FALLBACK_FAILURES, "replicas": replicas}


CRON_BINDING = "bindings.cron"


def why_not_wired(subject: Subject) -> str | None:
    """Why the ofobserve scaler does not scale this function, or ``None`` when it does."""
    f, s = subject.function, subject.settings.scaling
    if f.runtime is Runtime.KNATIVE:
        return "Knative's autoscaler scales it (docs/scaling.md)"
    if f.runtime is Runtime.KEDA_HTTP:
        return "the KEDA HTTP add-on's ScaledObject scales it (docs/scaling.md)"
    if not f.scale.triggers and any(i.component_type == CRON_BINDING for i in f.inputs):
        return (
            "a cron binding and no KEDA trigger: OpenFunction runs it without a ScaledObject; "
            "scaling it would repeat or miss runs"
        )
    if s.delivery == "scaled-object":
        if f.refs.scaled_object:
            return (
                f"OpenFunction's ScaledObject {f.refs.scaled_object} scales it; KEDA refuses a "
                "second one (use scaling.delivery: function-patch)"
            )
        if not f.refs.workload:
            return "scaling.delivery scaled-object needs --from-cluster (the Deployment's name)"
        return None
    if not f.api_version.endswith("/v1beta2"):
        return "a v1beta1 Function has no scaleOptions.keda.triggers to patch"
    return None


def auth_name(subject: Subject) -> str:
    return f"{object_name(subject.function.name)}-scaler-tls"


def build_scaling(subject: Subject) -> dict[str, Any] | None:
    """The Function patch or the ScaledObject; ``None`` where neither applies
    (:func:`why_not_wired` says why)."""
    if why_not_wired(subject) is not None:
        return None
    if subject.settings.scaling.delivery == "scaled-object":
        return _scaled_object(subject)
    f = subject.function
    own = [json.loads(t.raw) for t in f.scale.triggers if t.raw]
    scale_options: dict[str, Any] = {
        "keda": {
            "triggers": [*own, _trigger(subject)],
            "scaledObject": {
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": HPA_BEHAVIOR}},
                "fallback": _fallback(subject),
            },
        }
    }
    lo = _min_replicas(subject)
    if not f.scale.triggers and lo != f.scale.min_replicas:
        scale_options["minReplicas"] = lo  # nothing else could wake it from zero
    return {
        "apiVersion": f.api_version,
        "kind": "Function",
        "metadata": {"name": f.name, "namespace": f.namespace},
        "spec": {"serving": {"scaleOptions": scale_options}},
    }


def _scaled_object(subject: Subject) -> dict[str, Any]:
    f = subject.function
    lo, hi = _min_replicas(subject), _max_replicas(subject)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f.refs.workload},
        "triggers": [_trigger(subject)],
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": HPA_BEHAVIOR}},
        "fallback": _fallback(subject),
    }
    if lo is not None:
        spec["minReplicaCount"] = lo
    if hi is not None:
        spec["maxReplicaCount"] = hi
    return {
        "apiVersion": KEDA_API,
        "kind": "ScaledObject",
        "metadata": metadata(object_name(f.name), f.namespace),
        "spec": spec,
    }


def build_trigger_authentication(subject: Subject) -> dict[str, Any] | None:
    """KEDA's client certificate for the scaler, from ``scaling.tlsSecret`` (keys ``ca.crt``,
    ``tls.crt``, ``tls.key``, as cert-manager writes them)."""
    secret = subject.settings.scaling.tls_secret
    if not secret or build_scaling(subject) is None:
        return None
    f = subject.function
    return {
        "apiVersion": KEDA_API,
        "kind": "TriggerAuthentication",
        "metadata": metadata(auth_name(subject), f.namespace),
        "spec": {
            "secretTargetRef": [
                {"parameter": "caCert", "name": secret, "key": "ca.crt"},
                {"parameter": "tlsClientCert", "name": secret, "key": "tls.crt"},
                {"parameter": "tlsClientKey", "name": secret, "key": "tls.key"},
            ]
        },
    }
