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

With ``scaling.tlsSecret`` a TriggerAuthentication hands KEDA the client certificate; with
``scaling.triggerAuthentication`` the trigger refers to one made elsewhere (the Helm chart's
ClusterTriggerAuthentication).
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
from ofobserve.model import Function, KedaTrigger, Runtime
from ofobserve.slo import plain
from ofobserve.subject import Subject

KEDA_API = "keda.sh/v1alpha1"
TRIGGER_TYPE = "external-push"
TRIGGER_NAME = "ofobserve"
FALLBACK_FAILURES = 3
#: OpenFunction's own default cap (``apis/core/v1beta2/function_webhook.go``).
DEFAULT_MAX_REPLICAS = 10
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
    s = subject.settings.scaling
    if s.tls_secret:
        trigger["authenticationRef"] = {"name": auth_name(subject)}
    elif s.trigger_authentication:
        ref = s.trigger_authentication
        trigger["authenticationRef"] = {"name": ref.name, "kind": ref.kind}
    return trigger


def own_triggers(function: Function) -> list[KedaTrigger]:
    """The function's KEDA triggers but ours (an already patched Function has ours too)."""
    return [t for t in function.scale.triggers if t.name != TRIGGER_NAME]


def _min_replicas(subject: Subject) -> int | None:
    """The floor the wiring gives: the settings', else the Function's; at least 1 for a
    function with no KEDA trigger of its own, which nothing else could wake from zero."""
    s, f = subject.settings.scaling, subject.function
    lo = s.min_replicas if s.min_replicas is not None else f.scale.min_replicas
    if not own_triggers(f):
        return max(lo or 0, 1)
    return lo


def _max_replicas(subject: Subject) -> int | None:
    """The cap: the settings', else the Function's; for a function with no KEDA trigger
    of its own, which ran at a fixed size until now, OpenFunction's default cap of 10
    (its webhook's ``ValidateServing``) instead of KEDA's 100."""
    s, f = subject.settings.scaling, subject.function
    hi = s.max_replicas if s.max_replicas is not None else f.scale.max_replicas
    if hi is None and not own_triggers(f):
        return DEFAULT_MAX_REPLICAS
    return hi


def _fallback(subject: Subject) -> dict[str, Any] | None:
    """KEDA's static fallback (KEDA 2.10, which OpenFunction pins, has no ``behavior``):
    while the scaler fails, our trigger stands at ``replicas``. ``None`` where KEDA refuses
    a fallback (a ``cpu``/``memory`` trigger, or a metric type other than
    ``AverageValue``: kedacore/keda ``apis/keda/v1alpha1/scaledobject_types.go``
    ``CheckFallbackValid``) or where the user set their own, which is kept."""
    if subject.function.scale.own_fallback:
        return None
    for trigger in own_triggers(subject.function):
        raw = json.loads(trigger.raw) if trigger.raw else {}
        if trigger.type in ("cpu", "memory") or raw.get("metricType", "AverageValue") != (
            "AverageValue"
        ):
            return None
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
    if f.scale.scaled_job or f.scale.workload_type == "Job":
        return "a Job workload: OpenFunction makes a ScaledJob, which takes no HPA metric"
    if not own_triggers(f) and any(i.component_type == CRON_BINDING for i in f.inputs):
        return (
            "a cron binding and no KEDA trigger: OpenFunction runs it without a ScaledObject; "
            "scaled to zero it would miss its runs"
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
    own = [json.loads(t.raw) for t in own_triggers(f) if t.raw]
    scaled_object: dict[str, Any] = {}
    if not f.scale.own_hpa_behavior:  # the user's own HPA behavior is kept
        scaled_object["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": HPA_BEHAVIOR}}
    fallback = _fallback(subject)
    if fallback is not None:
        scaled_object["fallback"] = fallback
    keda: dict[str, Any] = {"triggers": [*own, _trigger(subject)]}
    if scaled_object:
        keda["scaledObject"] = scaled_object
    scale_options: dict[str, Any] = {"keda": keda}
    # Bounds where v1beta2 reads them: raised for a trigger-less function, or moved from
    # the older scaledObject.minReplicaCount/maxReplicaCount
    for key, value, written in (
        ("minReplicas", _min_replicas(subject), f.scale.min_replicas),
        ("maxReplicas", _max_replicas(subject), f.scale.max_replicas),
    ):
        if value is not None and (value != written or f.scale.legacy_bounds):
            scale_options[key] = value
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
        # its only trigger is ours (a function with its own has OpenFunction's ScaledObject)
        "fallback": {"failureThreshold": FALLBACK_FAILURES, "replicas": max(lo or 0, 1)},
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
