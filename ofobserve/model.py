"""The Function model: what ofobserve knows about one OpenFunction Function.

Frozen dataclasses only. Pure: no I/O, no grpc, kubernetes or HTTP imports.
Mappings are stored as sorted tuples of pairs so that models hash and compare by value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ofobserve import conventions
from ofobserve.errors import Location

Pairs = tuple[tuple[str, str], ...]


def pairs(mapping: dict[str, str] | None) -> Pairs:
    """A mapping as a sorted tuple of pairs (stable, hashable)."""
    return tuple(sorted((mapping or {}).items()))


class Runtime(enum.StrEnum):
    """How OpenFunction runs the function."""

    KNATIVE = "knative"  # sync HTTP function on Knative Serving
    ASYNC = "async"  # event-driven function on Dapr + KEDA
    KEDA_HTTP = "keda"  # sync HTTP function on the KEDA HTTP add-on (triggers.http.engine: keda)


@dataclass(frozen=True)
class DaprIO:
    """A Dapr input or output: a binding or a pubsub topic."""

    name: str
    component: str
    component_type: str  # e.g. "bindings.kafka", "pubsub.redis"; "" when not declared
    topic: str = ""
    operation: str = ""

    @property
    def kind(self) -> str:
        """``binding``, ``pubsub`` or ``unknown`` from the component type."""
        head = self.component_type.split(".", 1)[0]
        return {"bindings": "binding", "pubsub": "pubsub"}.get(head, "unknown")


@dataclass(frozen=True)
class KedaTrigger:
    """A KEDA trigger OpenFunction copies into the ScaledObject."""

    type: str
    name: str = ""
    metadata: Pairs = ()
    #: The trigger exactly as written (sorted JSON), so a patch can carry it back unchanged
    #: (authenticationRef, metricType, useCachedMetrics, ...).
    raw: str = ""


@dataclass(frozen=True)
class ScaleOptions:
    """``spec.serving.scaleOptions`` and the KEDA settings under it."""

    min_replicas: int | None = None
    max_replicas: int | None = None
    polling_interval: int | None = None
    cooldown_period: int | None = None
    triggers: tuple[KedaTrigger, ...] = ()
    #: The bounds came from ``keda.scaledObject.minReplicaCount``/``maxReplicaCount``,
    #: which v1beta2 does not have (read by intent).
    legacy_bounds: bool = False
    #: ``spec.serving.workloadType`` (``Deployment``, ``StatefulSet``, ``Job``), or "".
    workload_type: str = ""
    #: ``keda.scaledJob`` is set: OpenFunction makes a ScaledJob, not a ScaledObject.
    scaled_job: bool = False
    #: The user set ``keda.scaledObject.fallback`` / the HPA ``behavior`` themselves.
    own_fallback: bool = False
    own_hpa_behavior: bool = False


@dataclass(frozen=True)
class ClusterRefs:
    """Generated object names resolved from a live cluster (``--from-cluster`` only)."""

    serving: str = ""
    workload: str = ""
    scaled_object: str = ""
    knative_service: str = ""
    http_scaled_object: str = ""

    @property
    def hpa(self) -> str:
        """KEDA's default HPA name for the ScaledObject, or ``""``."""
        so = self.scaled_object or self.http_scaled_object
        return f"keda-hpa-{so}" if so else ""


@dataclass(frozen=True)
class Function:
    """One Function manifest, reduced to what observability and scaling need."""

    namespace: str
    name: str
    api_version: str
    runtime: Runtime
    source: Location = field(compare=False)
    http_port: int | None = None
    http_paths: tuple[str, ...] = ()
    inputs: tuple[DaprIO, ...] = ()
    outputs: tuple[DaprIO, ...] = ()
    scale: ScaleOptions = ScaleOptions()
    labels: Pairs = ()  # metadata.labels
    serving_labels: Pairs = ()  # spec.serving.labels (copied onto pods)
    annotations: Pairs = ()  # metadata.annotations
    serving_annotations: Pairs = ()  # spec.serving.annotations
    refs: ClusterRefs = ClusterRefs()
    #: ``spec.serving.template.containers`` as written (sorted JSON), for patches that must
    #: carry the list whole.
    containers_raw: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)``: unique within one render."""
        return (self.namespace, self.name)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def dapr_sidecar_mode(self) -> bool:
        """True when daprd runs in the function pod rather than the dapr-proxy Deployment."""
        annotations = dict(self.serving_annotations)
        return annotations.get(conventions.DAPR_SERVICE_MODE_ANNOTATION) == "sidecar"
