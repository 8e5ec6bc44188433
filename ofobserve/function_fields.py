"""Which fields of a Function OpenFunction's API server keeps, per API version. Pure, no I/O.

A Kubernetes API server *prunes* every field a CRD's structural schema does not declare:
the object is stored without it and no error is returned (Kubernetes < 1.25 never says
so; later versions only warn). This module describes the Function CRD of OpenFunction 1.2
(OpenFunction/OpenFunction ``config/crd/bases/core.openfunction.io_functions.yaml``, from
the Go types in ``apis/core/v1beta1`` and ``apis/core/v1beta2``) as a tree of the keys it
declares, so that :func:`pruned_fields` finds what a manifest would lose.

Scope: every OpenFunction field is described. ``spec.serving.template`` is a Kubernetes
PodSpec; its own keys and those of each container are checked, and what lies below them
(resources, probes, volumes...) is Kubernetes' core API, left to the API server.
``tests/test_function_fields.py`` proves the tree equal to the upstream CRD's schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Leaf:
    """A declared field whose value is not walked: a scalar, or a subtree kept whole
    (``x-kubernetes-preserve-unknown-fields``, or outside the scope above)."""


@dataclass(frozen=True)
class Obj:
    """A mapping with declared keys: any other key is pruned."""

    fields: Mapping[str, Node]


@dataclass(frozen=True)
class MapOf:
    """A mapping with free keys (``additionalProperties``) whose values are ``value``."""

    value: Node


@dataclass(frozen=True)
class ListOf:
    item: Node


Node = Leaf | Obj | MapOf | ListOf
LEAF = Leaf()
STRINGS = MapOf(LEAF)


def obj(*leaves: str, **nested: Node) -> Obj:
    """An :class:`Obj` with scalar ``leaves`` and ``nested`` subtrees."""
    return Obj({**dict.fromkeys(leaves, LEAF), **nested})


def pruned_fields(doc: Mapping[str, Any], version: str) -> Iterator[str]:
    """Dotted paths (``spec.serving.outputs[0].component``) of every field in ``doc`` that a
    Function ``version`` would drop, in document order. A value of the wrong type is a
    validation error, not a pruned field, and is not reported here."""
    yield from _walk(doc, FUNCTION[version], "")


def node_at(version: str, path: str) -> Node | None:
    """The schema node of a dotted ``path`` without list indices (a free map key is one
    part), or ``None`` when that version does not declare it."""
    node: Node | None = FUNCTION[version]
    for part in path.split(".") if path else ():
        while isinstance(node, ListOf):
            node = node.item
        if isinstance(node, MapOf):
            node = node.value
        elif isinstance(node, Obj):
            node = node.fields.get(part)
        else:
            return None
    while isinstance(node, ListOf):
        node = node.item
    return node


def _walk(value: Any, node: Node, path: str) -> Iterator[str]:
    if isinstance(node, Obj) and isinstance(value, Mapping):
        for key, child in value.items():
            here = f"{path}.{key}" if path else str(key)
            if key in node.fields:
                yield from _walk(child, node.fields[key], here)
            else:
                yield here
    elif isinstance(node, MapOf) and isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk(child, node.value, f"{path}.{key}")
    elif isinstance(node, ListOf) and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, node.item, f"{path}[{index}]")


# --- shared subtrees ------------------------------------------------------------------------

_OBJECT_REF = obj("name")
_COMPONENT = obj(
    "ignoreErrors",
    "initTimeout",
    "type",
    "version",
    metadata=ListOf(obj("name", "value", secretKeyRef=obj("key", "name"))),
)
_HEADERS = ListOf(obj("name", "value"))
_FILTER = obj(
    "type",
    extensionRef=obj("group", "kind", "name"),
    requestHeaderModifier=obj(add=_HEADERS, remove=ListOf(LEAF), set=_HEADERS),
    requestMirror=obj(backendRef=obj("group", "kind", "name", "namespace", "port")),
    requestRedirect=obj("hostname", "port", "scheme", "statusCode"),
)
_MATCH = ListOf(obj("name", "type", "value"))
#: A Gateway API HTTPRoute spec, as OpenFunction embeds it.
_ROUTE = obj(
    gatewayRef=obj("name", "namespace"),
    hostnames=ListOf(LEAF),
    rules=ListOf(
        obj(
            backendRefs=ListOf(
                obj("group", "kind", "name", "namespace", "port", "weight", filters=ListOf(_FILTER))
            ),
            filters=ListOf(_FILTER),
            matches=ListOf(
                obj("method", headers=_MATCH, path=obj("type", "value"), queryParams=_MATCH)
            ),
        )
    ),
)
_POLICIES = obj(
    "selectPolicy",
    "stabilizationWindowSeconds",
    policies=ListOf(obj("periodSeconds", "type", "value")),
)
_HPA_CONFIG = obj("name", behavior=obj(scaleDown=_POLICIES, scaleUp=_POLICIES))
_KEDA_TRIGGER = obj(
    "metricType",
    "name",
    "type",
    "useCachedMetrics",
    authenticationRef=obj("kind", "name"),
    metadata=STRINGS,
)
_CONTAINER = Obj(
    dict.fromkeys(
        (
            "args",
            "command",
            "env",
            "envFrom",
            "image",
            "imagePullPolicy",
            "lifecycle",
            "livenessProbe",
            "name",
            "ports",
            "readinessProbe",
            "resources",
            "securityContext",
            "startupProbe",
            "stdin",
            "stdinOnce",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "tty",
            "volumeDevices",
            "volumeMounts",
            "workingDir",
        ),
        LEAF,
    )
)
_EPHEMERAL_CONTAINER = Obj({**_CONTAINER.fields, "targetContainerName": LEAF})
#: Kubernetes' PodSpec as OpenFunction 1.2's CRD has it (k8s.io/api core/v1 of its go.mod).
_POD_SPEC = Obj(
    {
        **dict.fromkeys(
            (
                "activeDeadlineSeconds",
                "affinity",
                "automountServiceAccountToken",
                "dnsConfig",
                "dnsPolicy",
                "enableServiceLinks",
                "hostAliases",
                "hostIPC",
                "hostNetwork",
                "hostPID",
                "hostUsers",
                "hostname",
                "imagePullSecrets",
                "nodeName",
                "nodeSelector",
                "os",
                "overhead",
                "preemptionPolicy",
                "priority",
                "priorityClassName",
                "readinessGates",
                "resourceClaims",
                "restartPolicy",
                "runtimeClassName",
                "schedulerName",
                "schedulingGates",
                "securityContext",
                "serviceAccount",
                "serviceAccountName",
                "setHostnameAsFQDN",
                "shareProcessNamespace",
                "subdomain",
                "terminationGracePeriodSeconds",
                "tolerations",
                "topologySpreadConstraints",
                "volumes",
            ),
            LEAF,
        ),
        "containers": ListOf(_CONTAINER),
        "initContainers": ListOf(_CONTAINER),
        "ephemeralContainers": ListOf(_EPHEMERAL_CONTAINER),
    }
)
_SRC_REPO = obj(
    "revision", "sourceSubPath", "url", bundleContainer=obj("image"), credentials=_OBJECT_REF
)
_BUILD_COMMON: dict[str, Node] = {
    **dict.fromkeys(
        (
            "builder",
            "builderMaxAge",
            "dockerfile",
            "failedBuildsHistoryLimit",
            "successfulBuildsHistoryLimit",
            "timeout",
        ),
        LEAF,
    ),
    "builderCredentials": _OBJECT_REF,
    "env": STRINGS,
    "srcRepo": _SRC_REPO,
}
_PARAM_VALUE: dict[str, Node] = {
    "value": LEAF,
    "configMapValue": obj("format", "key", "name"),
    "secretValue": obj("format", "key", "name"),
}
_SHIPWRIGHT = obj(
    "timeout",
    strategy=obj("kind", "name"),
    params=ListOf(Obj({"name": LEAF, **_PARAM_VALUE, "values": ListOf(Obj(_PARAM_VALUE))})),
)
_SERVING_COMMON: dict[str, Node] = {
    "annotations": STRINGS,
    "bindings": MapOf(_COMPONENT),
    "labels": STRINGS,
    "params": STRINGS,
    "pubsub": MapOf(_COMPONENT),
    "template": _POD_SPEC,
    "timeout": LEAF,
}
_SPEC_COMMON: dict[str, Node] = {
    "image": LEAF,
    "imageCredentials": _OBJECT_REF,
    "version": LEAF,
    "workloadRuntime": LEAF,
}
_SCALED_JOB_FIELDS = obj(
    "failedJobsHistoryLimit",
    "pollingInterval",
    "restartPolicy",
    "successfulJobsHistoryLimit",
    scalingStrategy=obj(
        "customScalingQueueLengthDeduction",
        "customScalingRunningJobPercentage",
        "multipleScalersCalculation",
        "strategy",
        pendingPodConditions=ListOf(LEAF),
    ),
).fields


def _document(spec: Obj) -> Obj:
    return obj("apiVersion", "kind", "metadata", "status", spec=spec)


_DAPR_IO_V1BETA1 = ListOf(obj("component", "name", "operation", "topic", params=STRINGS))

V1BETA1 = _document(
    Obj(
        {
            **_SPEC_COMMON,
            "port": LEAF,
            "route": _ROUTE,
            "build": Obj({**_BUILD_COMMON, "params": STRINGS, "shipwright": _SHIPWRIGHT}),
            "serving": Obj(
                {
                    **_SERVING_COMMON,
                    "inputs": _DAPR_IO_V1BETA1,
                    "outputs": _DAPR_IO_V1BETA1,
                    "runtime": LEAF,
                    "states": MapOf(_COMPONENT),
                    "triggers": ListOf(Obj({**_KEDA_TRIGGER.fields, "targetKind": LEAF})),
                    "scaleOptions": obj(
                        "maxReplicas",
                        "minReplicas",
                        knative=STRINGS,
                        keda=obj(
                            scaledJob=Obj({**_SCALED_JOB_FIELDS, "maxReplicaCount": LEAF}),
                            scaledObject=obj(
                                "cooldownPeriod",
                                "maxReplicaCount",
                                "minReplicaCount",
                                "pollingInterval",
                                "workloadType",
                                advanced=obj(
                                    "restoreToOriginalReplicaCount",
                                    horizontalPodAutoscalerConfig=_HPA_CONFIG,
                                ),
                            ),
                        ),
                    ),
                }
            ),
        }
    )
)

V1BETA2 = _document(
    Obj(
        {
            **_SPEC_COMMON,
            "build": Obj({**_BUILD_COMMON, "shipwright": _SHIPWRIGHT}),
            "serving": Obj(
                {
                    **_SERVING_COMMON,
                    "workloadType": LEAF,
                    "states": MapOf(obj(spec=_COMPONENT)),
                    "hooks": obj("policy", post=ListOf(LEAF), pre=ListOf(LEAF)),
                    "outputs": ListOf(
                        obj(
                            dapr=obj(
                                "name", "operation", "outputName", "topic", "type", metadata=STRINGS
                            )
                        )
                    ),
                    "triggers": obj(
                        dapr=ListOf(obj("inputName", "name", "topic", "type")),
                        http=obj("engine", "port", route=_ROUTE),
                        inputs=ListOf(obj(dapr=obj("name", "topic", "type"))),
                    ),
                    "scaleOptions": obj(
                        "maxReplicas",
                        "minReplicas",
                        knative=STRINGS,
                        keda=obj(
                            httpScaledObject=obj("cooldownPeriod", "targetPendingRequests"),
                            scaledJob=Obj(_SCALED_JOB_FIELDS),
                            scaledObject=obj(
                                "cooldownPeriod",
                                "pollingInterval",
                                advanced=obj(
                                    "restoreToOriginalReplicaCount",
                                    horizontalPodAutoscalerConfig=_HPA_CONFIG,
                                ),
                                fallback=obj("failureThreshold", "replicas"),
                            ),
                            triggers=ListOf(_KEDA_TRIGGER),
                        ),
                    ),
                    "tracing": obj(
                        "enabled",
                        baggage=STRINGS,
                        tags=STRINGS,
                        provider=obj(
                            "name",
                            "oapServer",
                            exporter=obj(
                                "compression", "endpoint", "headers", "name", "protocol", "timeout"
                            ),
                        ),
                    ),
                }
            ),
        }
    )
)

FUNCTION: Mapping[str, Obj] = {"v1beta1": V1BETA1, "v1beta2": V1BETA2}
