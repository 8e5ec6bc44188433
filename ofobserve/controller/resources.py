"""The kinds the controller applies, and where each lives in the API. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """A namespaced kind: its ``apiVersion``, ``kind`` and resource (plural) name."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The collection (every namespace when ``namespace`` is ``None``) or one object."""
        base = f"/apis/{self.api_version}" if "/" in self.api_version else "/api/v1"
        if namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name is not None else base


#: Everything render makes that is a Kubernetes object of its own (no Function patches, no
#: dashboard JSON files, no promtool tests).
MANAGED_KINDS: tuple[Kind, ...] = (
    Kind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors"),
    Kind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
    Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
    Kind("keda.sh/v1alpha1", "TriggerAuthentication", "triggerauthentications"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("grafana.integreatly.org/v1beta1", "GrafanaDashboard", "grafanadashboards"),
)
_BY_TYPE = {(k.api_version, k.kind): k for k in MANAGED_KINDS}
#: The kinds that can land outside the function's namespace (Grafana's, the fleet's).
DASHBOARD_KINDS: tuple[Kind, ...] = (
    _BY_TYPE[("v1", "ConfigMap")],
    _BY_TYPE[("grafana.integreatly.org/v1beta1", "GrafanaDashboard")],
)

FUNCTION_GROUP = "core.openfunction.io"
#: The storage version of OpenFunction's Function CRD; both versions are the same objects.
FUNCTION_VERSION = "v1beta2"
EVENTS = Kind("v1", "Event", "events")
LEASES = Kind("coordination.k8s.io/v1", "Lease", "leases")
CONFIGMAPS = _BY_TYPE[("v1", "ConfigMap")]


def function_kind(version: str = FUNCTION_VERSION) -> Kind:
    return Kind(f"{FUNCTION_GROUP}/{version}", "Function", "functions")


def managed_kind(api_version: str, kind: str) -> Kind | None:
    """The managed kind of ``apiVersion``/``kind``, or ``None`` when it is not one."""
    return _BY_TYPE.get((api_version, kind))


@dataclass(frozen=True, order=True)
class ObjectKey:
    """One object: sorted by kind, then namespace and name."""

    kind: str
    namespace: str
    name: str
    api_version: str

    @property
    def resource(self) -> Kind:
        found = managed_kind(self.api_version, self.kind)
        if found is None:
            raise ValueError(f"{self.api_version} {self.kind} is not a managed kind")
        return found

    def path(self) -> str:
        return self.resource.path(self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def key_of(obj: dict[str, object]) -> ObjectKey:
    """The key of a Kubernetes object given as plain data."""
    meta = obj.get("metadata")
    assert isinstance(meta, dict)
    return ObjectKey(
        kind=str(obj["kind"]),
        namespace=str(meta.get("namespace", "")),
        name=str(meta["name"]),
        api_version=str(obj["apiVersion"]),
    )
