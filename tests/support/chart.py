"""The Helm chart under deploy/helm/ofobserve: ``helm`` runs, its value sets, and the
stand-in CRDs for the kinds ../shared/crds does not hold.

Stand-ins (named as such in docs/deploy.md):
- **ClusterTriggerAuthentication**: KEDA's CRD declares the same ``TriggerAuthenticationSpec``
  as TriggerAuthentication (kedacore/keda ``apis/keda/v1alpha1/triggerauthentication_types.go``,
  ``config/crd/bases/keda.sh_clustertriggerauthentications.yaml``), so it is made from the
  upstream TriggerAuthentication CRD in ../shared/crds with a cluster scope.
- **cert-manager Certificate, Issuer, ClusterIssuer**: structural schemas typed by hand from
  cert-manager's v1 API (cert-manager/cert-manager ``pkg/apis/certmanager/v1/types_certificate.go``
  and ``types_issuer.go``) for the fields the chart writes; anything else is pruned, so a
  misspelt field shows up as dropped.
"""

from __future__ import annotations

import copy
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.crds import crd_dir
from tests.support.tools import REPO

CHART = REPO / "deploy" / "helm" / "ofobserve"
GOLDEN = REPO / "tests" / "golden" / "chart"
RELEASE = "ofobserve"
NAMESPACE = "ofobserve"
#: Value sets: name -> values file (None: the chart's defaults).
VALUE_SETS: dict[str, Path | None] = {
    "defaults": None,
    **{
        p.name.removesuffix("-values.yaml"): p for p in sorted((CHART / "ci").glob("*-values.yaml"))
    },
}
#: The Kubernetes versions templates are validated at: the oldest and newest that
#: kubernetes-validate ships schemas for (1.20, the chart's minimum, is the real API server).
KUBE_VERSIONS = ("1.25.0", "1.37.0")
#: What ``helm template`` assumes when not told (the golden files are made at it).
GOLDEN_KUBE_VERSION = "1.37.0"


def helm_env(home: Path) -> dict[str, str]:
    """Helm's config, cache and data under ``home``: nothing of the user's is read."""
    return {
        **os.environ,
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def run_helm(
    helm: str, home: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm, *args], capture_output=True, text=True, env=helm_env(home), timeout=180
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def values_args(value_set: str) -> list[str]:
    path = VALUE_SETS[value_set]
    return ["-f", str(path)] if path else []


def template(helm: str, home: Path, value_set: str, kube_version: str, *extra: str) -> str:
    return run_helm(
        helm, home, "template", RELEASE, str(CHART), "-n", NAMESPACE,
        "--kube-version", kube_version, *values_args(value_set), *extra,
    ).stdout  # fmt: skip


def objects(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_S = {"type": "string"}
_ISSUER_REF = _obj({"name": _S, "kind": _S, "group": _S}, ["name"])
CERTIFICATE_SPEC = _obj(
    {
        "secretName": _S,
        "commonName": _S,
        "dnsNames": {"type": "array", "items": _S},
        "duration": _S,
        "renewBefore": _S,
        "isCA": {"type": "boolean"},
        "usages": {
            "type": "array",
            "items": {
                "type": "string",
                "enum": [
                    "server auth",
                    "client auth",
                    "digital signature",
                    "key encipherment",
                    "cert sign",
                ],
            },
        },
        "privateKey": _obj(
            {
                "algorithm": {"type": "string", "enum": ["RSA", "ECDSA", "Ed25519"]},
                "rotationPolicy": {"type": "string", "enum": ["Never", "Always"]},
                "size": {"type": "integer"},
            }
        ),
        "issuerRef": _ISSUER_REF,
    },
    ["secretName", "issuerRef"],
)
ISSUER_SPEC = _obj({"selfSigned": _obj({}), "ca": _obj({"secretName": _S}, ["secretName"])})


def _crd(group: str, kind: str, plural: str, scope: str, spec: dict[str, Any]) -> dict[str, Any]:
    schema = _obj({"apiVersion": _S, "kind": _S, "metadata": {"type": "object"}, "spec": spec})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower()},
            "versions": [{"name": "v1" if group == "cert-manager.io" else "v1alpha1",
                          "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": schema}}],
        },
    }  # fmt: skip


@cache
def standin_crds() -> tuple[dict[str, Any], ...]:
    """The stand-in CRDs (see the module docstring), as the API server takes them."""
    [upstream] = [
        doc
        for doc in yaml.safe_load_all(
            (crd_dir() / "keda.sh_triggerauthentications.yaml").read_text()
        )
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    cluster = copy.deepcopy(upstream)
    cluster["metadata"] = {"name": "clustertriggerauthentications.keda.sh"}
    cluster["spec"]["scope"] = "Cluster"
    cluster["spec"]["names"] = {
        "kind": "ClusterTriggerAuthentication",
        "listKind": "ClusterTriggerAuthenticationList",
        "plural": "clustertriggerauthentications",
        "singular": "clustertriggerauthentication",
    }
    cluster.pop("status", None)
    return (
        cluster,
        _crd("cert-manager.io", "Certificate", "certificates", "Namespaced", CERTIFICATE_SPEC),
        _crd("cert-manager.io", "Issuer", "issuers", "Namespaced", ISSUER_SPEC),
        _crd("cert-manager.io", "ClusterIssuer", "clusterissuers", "Cluster", ISSUER_SPEC),
    )


def standin_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The stand-in's openAPIV3Schema for ``(apiVersion, kind)``, or ``None``."""
    for crd in standin_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            if (f"{spec['group']}/{version['name']}", spec["names"]["kind"]) == (api_version, kind):
                schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
                return schema
    return None
