"""The Helm chart (deploy/helm/ofobserve): lint, every value set's objects against the
Kubernetes and CRD schemas, the restricted Pod Security profile, least-privilege RBAC, the
golden output, its own alerts in promtool, and install / upgrade / uninstall on the real
Kubernetes API server (1.20; no pod ever runs there: no kubelet, scheduler or controllers)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from ofobserve import conventions as c
from ofobserve.loading import load_config
from ofobserve.scaler.telemetry import LAG_BUCKETS
from ofobserve.settings import Settings, fleet_settings
from tests.conftest import run_cli
from tests.support.chart import (
    CHART,
    GOLDEN,
    GOLDEN_KUBE_VERSION,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    objects,
    run_helm,
    standin_crds,
    standin_schema,
    template,
    values_args,
)
from tests.support.crds import validate_custom_resource
from tests.support.kube import KubeAPI, dropped_fields
from tests.support.pruning import pruned_paths
from tests.support.tools import REPO, require_tool

SETS = sorted(VALUE_SETS)
CORE_GROUPS = ("v1", "apps/", "policy/", "rbac.authorization.k8s.io/", "networking.k8s.io/")


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="module")
def rendered(helm: str, helm_home: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(value set, Kubernetes version) -> the chart's objects."""
    return {
        (name, version): objects(template(helm, helm_home, name, version))
        for name in SETS
        for version in KUBE_VERSIONS
    }


def _core(obj: dict[str, Any]) -> bool:
    api = obj["apiVersion"]
    return api == "v1" or api.startswith(CORE_GROUPS[1:])


def _name(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '-')}/{meta['name']}"


# --- lint and schema ------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", SETS)
def test_helm_lint_strict_is_clean(helm: str, helm_home: Path, value_set: str) -> None:
    result = run_helm(helm, helm_home, "lint", "--strict", str(CHART), *values_args(value_set))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize("value_set", SETS)
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_object_validates(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], value_set: str, version: str
) -> None:
    """Core kinds against Kubernetes' own OpenAPI schemas (strict: unknown fields fail);
    custom resources against the upstream CRDs or the stand-ins, failing on pruned fields."""
    found = rendered[(value_set, version)]
    assert found
    for obj in found:
        if _core(obj):
            kubernetes_validate.validate(obj, version, strict=True)
            continue
        schema = standin_schema(obj["apiVersion"], obj["kind"])
        if schema is None:
            validate_custom_resource(obj)
        else:
            jsonschema.Draft7Validator(schema).validate(obj)
            assert pruned_paths(obj, schema) == [], _name(obj)


def test_values_outside_the_schema_are_refused(helm: str, helm_home: Path) -> None:
    cases = {
        ("--set", "scaler.replicas=0"): "scaler.replicas: Must be greater than or equal to 1",
        ("--set", "scaler.sorce=direct"): "scaler: Additional property sorce is not allowed",
        ("--set", "tls.mode=manual"): "tls.mode: tls.mode must be one of the following",
        ("--set", "scaler.source=prometheus"): (
            "scaler.prometheus.url is required with scaler.source: prometheus"
        ),
        ("--set", "tls.mode=secret"): "tls.existingSecret is required with tls.mode: secret",
        ("--set", "keda.triggerAuthentication.kind=TriggerAuthentication"): (
            "keda.triggerAuthentication.kind TriggerAuthentication needs "
            "keda.triggerAuthentication.namespaces (or watchNamespaces)"
        ),
        ("--set", "tls.certManager.issuerRef.name=mine", "--set",
         "tls.certManager.issuerRef.kind=Issuer"): (
            "tls.certManager.issuerRef must be a ClusterIssuer"
        ),
        ("--set", "scaler.source=prometheus", "--set", "scaler.prometheus.url=http://p:9090",
         "--set", "scaler.prometheus.basicAuth.username=ofobserve"): (
            "scaler.prometheus.basicAuth.username needs "
            "scaler.prometheus.basicAuth.passwordSecret.name"
        ),
        ("--set", "scaler.preStopSleepSeconds=-1"): (
            "scaler.preStopSleepSeconds: Must be greater than or equal to 0"
        ),
        ("--set", "scaler.forgetAfter=soon"): (
            "scaler.forgetAfter: Does not match pattern '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)?$'"
        ),
        (*PROM, "--set", "scaler.prometheus.headers[0].name=X-Scope-OrgID",
         "--set", "scaler.prometheus.headers[0].value=a",
         "--set", "scaler.prometheus.headers[0].secret.name=s",
         "--set", "scaler.prometheus.headers[0].secret.key=k"): (
            "scaler.prometheus.headers.0: Must validate one and only one schema (oneOf)"
        ),
        (*PROM, "--set", "scaler.prometheus.headers[0].name=X Scope",
         "--set", "scaler.prometheus.headers[0].value=a"): (
            "scaler.prometheus.headers.0.name: Does not match pattern"
        ),
        (*PROM, "--set", "scaler.prometheus.headers[0].name=Authorization",
         "--set", "scaler.prometheus.headers[0].value=Bearer x",
         "--set", "scaler.prometheus.bearerTokenSecret.name=token"): (
            "scaler.prometheus.headers: an Authorization header cannot go with "
            "scaler.prometheus.bearerTokenSecret or scaler.prometheus.basicAuth"
        ),
    }  # fmt: skip
    for args, message in cases.items():
        result = run_helm(helm, helm_home, "template", RELEASE, str(CHART), *args, check=False)
        assert result.returncode == 1, args
        assert message in result.stderr, (args, result.stderr)


PROM = ("--set", "scaler.source=prometheus", "--set", "scaler.prometheus.url=http://p:9090")


def test_prometheus_headers_and_forget_after_reach_the_scaler(helm: str, helm_home: Path) -> None:
    """The grafana-operator value set: a header from a Secret key (mounted as a file the
    flag names) and one given as is, and ``forgetAfter``; the scaler's own parser takes
    the args the chart writes and stops only at the file the kubelet would mount here
    (exit 1 naming it: not a usage error)."""
    no_token = ("--set", "scaler.prometheus.bearerTokenSecret.name=")
    manifest = template(helm, helm_home, "grafana-operator", GOLDEN_KUBE_VERSION, *no_token)
    [deployment] = [o for o in objects(manifest) if _is(o, "Deployment")]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    from_secret = "--prometheus-header=X-Scope-OrgID=@/etc/ofobserve/prometheus-headers/0/value"
    assert from_secret in args
    assert "--prometheus-header=X-Query-Source=ofobserve scaler" in args
    assert "--forget-after=15m" in args
    [volume] = [v for v in pod["volumes"] if v["name"] == "prometheus-header-0"]
    assert volume["secret"] == {
        "secretName": "prometheus-tenant",
        "items": [{"key": "org-id", "path": "value"}],
    }
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "prometheus-header-0"]
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/ofobserve/prometheus-headers/0", True)
    path = from_secret.partition("=@")[2]
    assert path == f"{mount['mountPath']}/value"
    result = run_cli(*args)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.strip() == (
        f"Error: cannot read --prometheus-header X-Scope-OrgID file {path}: "
        "No such file or directory"
    )
    defaults = objects(template(helm, helm_home, "defaults", GOLDEN_KUBE_VERSION))
    [direct] = [o for o in defaults if _is(o, "Deployment")]
    assert "--forget-after=10m" in direct["spec"]["template"]["spec"]["containers"][0]["args"]


# --- security ---------------------------------------------------------------------------------


def _pod_specs(
    found: list[dict[str, Any]], component: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in found:
        workload = obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
        if workload and component in (None, _component(obj)):
            yield _name(obj), obj["spec"]["template"]["spec"]


def _component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def _is(obj: dict[str, Any], kind: str, component: str = "scaler") -> bool:
    return obj["kind"] == kind and _component(obj) == component


@pytest.mark.parametrize("value_set", SETS)
def test_every_pod_meets_the_restricted_pod_security_profile(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], value_set: str
) -> None:
    found = rendered[(value_set, GOLDEN_KUBE_VERSION)]
    pods = list(_pod_specs(found))
    assert pods
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 65532, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), (name, flag)
        assert all("hostPath" not in v for v in pod.get("volumes", [])), name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["runAsNonRoot"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context.get("privileged", False) is False, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            assert container["livenessProbe"], name
            assert container["readinessProbe"], name
        # the Kubernetes API token only where the direct source lists pods, and in the
        # controller, which talks to the API server
        args = pod["containers"][0]["args"]
        wants_api = args[0] == "controller" or "--source=direct" in args
        assert pod["automountServiceAccountToken"] is wants_api, name


def _watched(value_set: str) -> list[str]:
    path = VALUE_SETS[value_set]
    return list(yaml.safe_load(path.read_text()).get("watchNamespaces", [])) if path else []


#: What the direct source sends: a list, then a watch, of the pods (docs/scaling.md).
SCALER_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]


def _roles(found: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return [o for o in found if o["kind"] in ("Role", "ClusterRole") and _component(o) == component]


@pytest.mark.parametrize("value_set", SETS)
def test_rbac_grants_the_scaler_exactly_listing_and_watching_pods_and_never_a_wildcard(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], value_set: str
) -> None:
    found = rendered[(value_set, GOLDEN_KUBE_VERSION)]
    roles = _roles(found, "scaler")
    scalers = list(_pod_specs(found, "scaler"))
    direct = any("--source=direct" in pod["containers"][0]["args"] for _, pod in scalers)
    watched = _watched(value_set)
    if not direct:
        assert roles == []
        return
    if watched:
        assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(watched)
        assert {r["kind"] for r in roles} == {"Role"}
        # and the scaler refuses the other namespaces by name instead of failing to list
        [(_, pod)] = scalers
        flags = [a for a in pod["containers"][0]["args"] if a.startswith("--watch-namespace=")]
        assert flags == [f"--watch-namespace={n}" for n in watched]
    else:
        assert [r["kind"] for r in roles] == ["ClusterRole"]
    for role in roles:
        assert role["rules"] == SCALER_RULES
        text = json.dumps(role["rules"])
        assert "*" not in text


#: What the controller sends (docs/controller.md "RBAC"), per namespace of functions.
MANAGE = ["list", "create", "patch", "delete"]
CONTROLLER_RULES = [
    {"apiGroups": ["core.openfunction.io"], "resources": ["functions"],
     "verbs": ["list", "watch", "patch"]},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["podmonitors", "prometheusrules"],
     "verbs": MANAGE},
    {"apiGroups": ["keda.sh"], "resources": ["scaledobjects", "triggerauthentications"],
     "verbs": MANAGE},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": MANAGE},
    {"apiGroups": ["grafana.integreatly.org"], "resources": ["grafanadashboards"],
     "verbs": MANAGE},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]  # fmt: skip
#: In the release namespace: its settings ConfigMap and its Lease.
CONTROLLER_OWN_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "create", "update"]},
]  # fmt: skip


@pytest.mark.parametrize("value_set", SETS)
def test_rbac_grants_the_controller_what_it_sends_and_never_a_wildcard(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], value_set: str
) -> None:
    found = rendered[(value_set, GOLDEN_KUBE_VERSION)]
    roles = _roles(found, "controller")
    if not list(_pod_specs(found, "controller")):
        assert roles == []
        return
    by_place = {
        (r["kind"], r["metadata"].get("namespace", ""), r["metadata"]["name"]): r["rules"]
        for r in roles
    }
    watched = _watched(value_set)
    unique = f"ofobserve-controller-{NAMESPACE}"  # outside the release namespace
    expected = {("Role", NAMESPACE, "ofobserve-controller"): CONTROLLER_OWN_RULES}
    if watched:
        expected |= {("Role", n, unique): CONTROLLER_RULES for n in watched}
        if NAMESPACE not in watched:  # the fleet dashboards go to the release namespace
            expected[("Role", NAMESPACE, f"{unique}-dashboards")] = CONTROLLER_RULES[3:5]
    else:
        expected[("ClusterRole", "", unique)] = CONTROLLER_RULES
    assert by_place == expected
    assert "*" not in json.dumps([r["rules"] for r in roles])
    bindings = [o for o in found if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    for role in roles:
        [binding] = [
            b for b in bindings
            if b["roleRef"]["name"] == role["metadata"]["name"]
            and b["metadata"].get("namespace") == role["metadata"].get("namespace")
        ]  # fmt: skip
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ofobserve-controller", "namespace": NAMESPACE}
        ]


@pytest.mark.parametrize("value_set", SETS)
def test_the_controller_settings_load_and_point_at_the_charts_scaler(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], value_set: str, tmp_path: Path
) -> None:
    """The settings ConfigMap is a settings file ofobserve accepts, whose scaler address
    is the chart's Service and whose authentication is the chart's."""
    found = rendered[(value_set, GOLDEN_KUBE_VERSION)]
    maps = [o for o in found if o["kind"] == "ConfigMap" and _component(o) == "controller"]
    if not maps:
        return
    [settings_map] = maps
    path = tmp_path / "ofobserve.yaml"
    path.write_text(settings_map["data"]["ofobserve.yaml"])
    scaling = fleet_settings(load_config(str(path))).scaling
    [service] = [o for o in found if o["kind"] == "Service" and _component(o) == "scaler"]
    assert scaling.scaler_address == f"{service['metadata']['name']}.{NAMESPACE}.svc:6000"
    auths = [o for o in found if o["kind"].endswith("TriggerAuthentication")]
    if auths:
        assert scaling.trigger_authentication is not None
        assert {(a["kind"], a["metadata"]["name"]) for a in auths} == {
            (scaling.trigger_authentication.kind, scaling.trigger_authentication.name)
        }
    [(_, pod)] = list(_pod_specs(found, "controller"))
    args = pod["containers"][0]["args"]
    assert f"--config-map={NAMESPACE}/{settings_map['metadata']['name']}" in args
    assert [a for a in args if a.startswith("--namespace=")] == [
        f"--namespace={n}" for n in _watched(value_set)
    ]


def test_controller_replicas_follow_leader_election(helm: str, helm_home: Path) -> None:
    def controller(*values: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found = objects(template(helm, helm_home, "defaults", GOLDEN_KUBE_VERSION, *values))
        [deploy] = [o for o in found if o["kind"] == "Deployment" and _component(o) == "controller"]
        pdbs = [
            o for o in found if o["kind"] == "PodDisruptionBudget" and _component(o) == "controller"
        ]
        return deploy, pdbs

    deploy, pdbs = controller()
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}  # never two at once
    assert pdbs == []
    assert not [a for a in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
                if a.startswith("--leader-elect")]  # fmt: skip
    deploy, pdbs = controller("--set", "controller.leaderElection=true")
    assert deploy["spec"]["replicas"] == 2
    assert "strategy" not in deploy["spec"]
    [pdb] = pdbs
    assert pdb["spec"]["minAvailable"] == 1
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args
    assert f"--lease-namespace={NAMESPACE}" in args
    result = run_helm(helm, helm_home, "template", RELEASE, str(CHART),
                      "--set", "controller.replicas=2", check=False)  # fmt: skip
    assert result.returncode == 1
    assert "controller.replicas above 1 needs controller.leaderElection" in result.stderr


def test_the_network_policies_admit_only_keda_and_monitoring(
    rendered: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    """The scaler: KEDA to gRPC, Prometheus to metrics. The controller: Prometheus only."""
    policies = {
        _component(o): o
        for o in rendered[("defaults", GOLDEN_KUBE_VERSION)]
        if o["kind"] == "NetworkPolicy"
    }
    admitted = {
        component: {
            rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: [
                p["port"] for p in rule["ports"]
            ]
            for rule in policy["spec"]["ingress"]
        }
        for component, policy in policies.items()
    }
    assert admitted == {
        "scaler": {"keda": ["grpc"], "monitoring": ["metrics"]},
        "controller": {"monitoring": ["metrics"]},
    }
    assert all(p["spec"]["policyTypes"] == ["Ingress"] for p in policies.values())
    assert not any(o["kind"] == "NetworkPolicy" for o in rendered[("minimal", GOLDEN_KUBE_VERSION)])


# --- what the chart wires together -------------------------------------------------------------


def test_the_server_certificate_covers_the_address_render_writes(
    rendered: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    """render's default ``scalerAddress`` is the chart's default Service, and its host is a
    SAN of the server certificate: KEDA's gRPC client checks the host it dials."""
    found = rendered[("defaults", GOLDEN_KUBE_VERSION)]
    address = Settings().scaling.scaler_address
    host, port = address.rsplit(":", 1)
    [service] = [o for o in found if _is(o, "Service")]
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc" == host
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "grpc": int(port),
        "metrics": 9100,
    }
    certificates = [o for o in found if o["kind"] == "Certificate"]
    [server] = [o for o in certificates if "server auth" in o["spec"].get("usages", [])]
    assert host in server["spec"]["dnsNames"]
    assert "commonName" not in server["spec"]  # at most 64 bytes; the DNS names suffice
    [auth] = [o for o in found if o["kind"] == "ClusterTriggerAuthentication"]
    assert auth["metadata"]["name"] == "ofobserve-scaler-ofobserve"
    [client] = [o for o in certificates if "client auth" in o["spec"].get("usages", [])]
    assert client["metadata"]["namespace"] == "keda"  # where KEDA reads a CTA's Secrets
    secrets = {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    assert secrets == {client["spec"]["secretName"]}
    params = {ref["parameter"]: ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert params == {"caCert": "ca.crt", "tlsClientCert": "tls.crt", "tlsClientKey": "tls.key"}


def test_probes_and_the_disruption_budget_follow_the_cluster_version(
    helm: str, helm_home: Path
) -> None:
    """Native gRPC probes from 1.24 (a TCP probe of the same port before); policy/v1 from 1.21."""

    def deployment_and_pdb(version: str) -> tuple[dict[str, Any], dict[str, Any]]:
        found = objects(template(helm, helm_home, "defaults", version))
        [deploy] = [o for o in found if _is(o, "Deployment")]
        [pdb] = [o for o in found if _is(o, "PodDisruptionBudget")]
        return deploy["spec"]["template"]["spec"]["containers"][0], pdb

    container, pdb = deployment_and_pdb("1.24.0")
    assert container["livenessProbe"]["grpc"] == {"port": 6001}
    assert container["readinessProbe"]["grpc"] == {"port": 6001}
    assert pdb["apiVersion"] == "policy/v1"
    container, pdb = deployment_and_pdb("1.20.2")
    assert container["livenessProbe"]["tcpSocket"] == {"port": "health"}
    assert pdb["apiVersion"] == "policy/v1beta1"
    assert "--health-listen=0.0.0.0:6001" in container["args"]


def test_termination_grace_covers_the_prestop_sleep_and_the_scalers_drain(
    helm: str, helm_home: Path
) -> None:
    found = objects(template(helm, helm_home, "defaults", GOLDEN_KUBE_VERSION,
                             "--set-json", "scaler.gracePeriod=22.5"))  # fmt: skip
    [deploy] = [o for o in found if _is(o, "Deployment")]
    pod = deploy["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert "--grace-period=22.5" in container["args"]
    assert container["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert pod["terminationGracePeriodSeconds"] == 5 + 23 + 5
    found = objects(template(helm, helm_home, "defaults", GOLDEN_KUBE_VERSION,
                             "--set", "scaler.preStopSleepSeconds=0"))  # fmt: skip
    [deploy] = [o for o in found if _is(o, "Deployment")]
    pod = deploy["spec"]["template"]["spec"]
    assert "lifecycle" not in pod["containers"][0]
    assert pod["terminationGracePeriodSeconds"] == 10 + 5


def _outside_the_release_namespace(found: list[dict[str, Any]], namespace: str) -> set[str]:
    return {
        f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
        for o in found
        if o["metadata"].get("namespace", "") != namespace
    }


def test_releases_of_one_name_in_two_namespaces_share_no_object(helm: str, helm_home: Path) -> None:
    """Cluster-scoped objects and those in cert-manager's, KEDA's or the function
    namespaces carry the release namespace in their name."""
    seen = []
    for namespace in ("ofobserve", "other"):
        per_namespace = (
            "--set", "watchNamespaces={shop}",
            "--set", "keda.triggerAuthentication.kind=TriggerAuthentication",
        )  # fmt: skip
        manifest = run_helm(
            helm, helm_home, "template", RELEASE, str(CHART), "-n", namespace, *per_namespace
        ).stdout
        outside = _outside_the_release_namespace(objects(manifest), namespace)
        assert {name.split("/")[0] for name in outside} >= {
            "ClusterIssuer", "Certificate", "TriggerAuthentication", "Role", "RoleBinding",
        }  # fmt: skip
        seen.append(outside)
    assert seen[0].isdisjoint(seen[1])


def test_the_self_signed_ca_keeps_its_key_across_renewals(
    rendered: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    """Server and client each trust their own Secret's ca.crt, re-issued at different
    times: an unchanged CA key keeps old and new certificates verifying in between."""
    found = rendered[("defaults", GOLDEN_KUBE_VERSION)]
    certificates = [o for o in found if o["kind"] == "Certificate"]
    [ca] = [o for o in certificates if o["spec"].get("isCA")]
    assert ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    for leaf in (o for o in certificates if not o["spec"].get("isCA")):
        assert leaf["spec"]["privateKey"]["rotationPolicy"] == "Always", _name(leaf)
        # ECDSA keys sign; key encipherment is an RSA usage
        assert "key encipherment" not in leaf["spec"]["usages"], _name(leaf)


def test_the_dashboards_are_the_committed_render_output(
    rendered: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    """Without the controller (which applies them itself): sidecar ConfigMaps, or
    GrafanaDashboards on request, both carrying the JSON that scripts/chart_files.py took
    from ``ofobserve render`` (its drift test is below)."""
    files = CHART / "files" / "dashboards"
    gitops = rendered[("gitops", GOLDEN_KUBE_VERSION)]
    maps = [o for o in gitops if o["kind"] == "ConfigMap" and _component(o) == "scaler"]
    by_key = {key: value for m in maps for key, value in m["data"].items()}
    assert json.loads(by_key["overview.json"]) == json.loads((files / "overview.json").read_text())
    assert json.loads(by_key["scaler.json"]) == json.loads((files / "scaler.json").read_text())
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    operator = rendered[("grafana-operator", GOLDEN_KUBE_VERSION)]
    boards = [o for o in operator if o["kind"] == "GrafanaDashboard"]
    assert sorted(b["metadata"]["name"] for b in boards) == [
        "ofobserve-overview",
        "ofobserve-scaler",
    ]
    assert {b["metadata"]["namespace"] for b in boards} == {"grafana"}


def test_the_chart_files_match_render() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chart_files.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_fluent_bit_config_tails_the_watched_namespaces(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], fluent_bit: str, tmp_path: Path
) -> None:
    found = rendered[("watch-namespaces", GOLDEN_KUBE_VERSION)]
    [config_map] = [o for o in found if o["metadata"]["name"] == "ofobserve-fluent-bit"]
    text = config_map["data"]["fluent-bit.yaml"]
    [tail] = [i for i in yaml.safe_load(text)["pipeline"]["inputs"] if i["name"] == "tail"]
    assert tail["path"] == (
        "/var/log/containers/*_shop_function-*.log,/var/log/containers/*_media_function-*.log"
    )
    config = tmp_path / "fluent-bit.yaml"
    config.write_text(text)
    result = subprocess.run([fluent_bit, "--dry-run", "-c", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scalers_own_alerts_pass_promtool(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], promtool: str, tmp_path: Path
) -> None:
    [rule] = [o for o in rendered[("defaults", GOLDEN_KUBE_VERSION)] if _is(o, "PrometheusRule")]
    assert _alert_names(rule) == {
        "OfobserveScalerDown",
        "OfobserveScalerReplicaDown",
        "OfobserveScalerSourceStale",
        "OfobserveScalerSourceErrors",
        "OfobserveScalerRPCErrors",
        "OfobserveScalerEventLoopLag",
    }
    tests = _alert_tests()
    # every alert is checked firing, and silent at some other time
    checked = [(e["alertname"], bool(e["exp_alerts"])) for g in tests["tests"]
               for e in g["alert_rule_test"]]  # fmt: skip
    assert {(name, fires) for name in _alert_names(rule) for fires in (True, False)} == set(checked)
    _promtool_check_and_test(promtool, tmp_path, rule, tests)


def test_the_event_loop_lag_threshold_is_a_bucket_bound_and_the_dashboards_line() -> None:
    """The default OfobserveScalerEventLoopLag threshold is a bound of the histogram's
    buckets (so p99 above it means more than 1 % of the probes were later than it), and
    the line the scaler dashboard draws."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    threshold = values["monitoring"]["prometheusRule"]["eventLoopLag"]
    assert threshold == c.SCALER_EVENT_LOOP_LAG_ALERT
    assert threshold in LAG_BUCKETS


def test_the_controllers_alerts_pass_promtool(
    rendered: dict[tuple[str, str], list[dict[str, Any]]], promtool: str, tmp_path: Path
) -> None:
    found = rendered[("defaults", GOLDEN_KUBE_VERSION)]
    [rule] = [o for o in found if _is(o, "PrometheusRule", "controller")]
    assert _alert_names(rule) == {
        "OfobserveControllerDown",
        "OfobserveControllerNoLeader",
        "OfobserveControllerReconcileErrors",
        "OfobserveFunctionRenderFailed",
    }
    job = "ofobserve-controller"
    reconciles = "ofobserve_controller_reconciles_total"
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    _series("up", "1x3 0x10", job=job),
                    _series("ofobserve_controller_leader", "1x3 0x10", job=job),
                    _series(reconciles, "0x3 0+2x10", job=job, result="error"),
                    _series("ofobserve_controller_render_failures_total", "0x3 1x20", job=job),
                ],
                "alert_rule_test": [
                    _fires("3m", "OfobserveControllerDown"),
                    _fires("10m", "OfobserveControllerDown", severity="warning"),
                    _fires("10m", "OfobserveControllerNoLeader", severity="warning"),
                    _fires("10m", "OfobserveControllerReconcileErrors", severity="warning"),
                    _fires("3m", "OfobserveFunctionRenderFailed"),
                    _fires("5m", "OfobserveFunctionRenderFailed", severity="info", job=job),
                    _fires("22m", "OfobserveFunctionRenderFailed"),  # resolved, 15 m on
                ],
            },
        ],
    }
    _promtool_check_and_test(promtool, tmp_path, rule, tests)


def _alert_names(rule: dict[str, Any]) -> set[str]:
    return {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}


def _promtool_check_and_test(
    promtool: str, tmp_path: Path, rule: dict[str, Any], tests: dict[str, Any]
) -> None:
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump(rule["spec"]))
    # the unit tests look at when each alert fires and its labels; `check` reads the rest
    bare = [{**r, "annotations": {}} for g in rule["spec"]["groups"] for r in g["rules"]]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": bare}]}))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    for command in (["check", "rules", str(full)], ["test", "rules", str(tmp_path / "tests.yaml")]):
        result = subprocess.run([promtool, *command], capture_output=True, text=True,
                                cwd=tmp_path, check=False)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    selector = ",".join(f'{k}="{v}"' for k, v in {"job": "ofobserve-scaler", **labels}.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


def _fires(at: str, alert: str, **labels: str) -> dict[str, Any]:
    expected = [{"exp_labels": labels}] if labels else []
    return {"eval_time": at, "alertname": alert, "exp_alerts": expected}


def _lag(instance: str, per_minute: dict[str, str]) -> list[dict[str, str]]:
    """Event-loop lag histogram buckets of one scaler pod: ``le`` -> promtool values."""
    name = "ofobserve_scaler_event_loop_lag_seconds_bucket"
    return [_series(name, values, instance=instance, le=le) for le, values in per_minute.items()]


def _alert_tests() -> dict[str, Any]:
    """promtool unit tests: each alert fires on the series that mean trouble, and not before."""
    handled = "grpc_server_handled_total"
    errors = "ofobserve_scaler_source_errors_total"
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    _series("up", "1x3 0x10", instance="a"),
                    _series("up", "1x20", instance="b"),
                    _series("ofobserve_scaler_sample_age_seconds", "1x3 120x10",
                            namespace="shop", function="fn"),
                    _series(handled, "0+60x20", grpc_method="GetMetrics", grpc_code="OK"),
                    _series(handled, "0x3 0+30x16", grpc_method="GetMetrics",
                            grpc_code="UNAVAILABLE"),
                    _series(errors, "0x4 2+2x10", namespace="shop", function="fn",
                            source="direct", reason="timeout"),
                ],
                "alert_rule_test": [
                    _fires("3m", "OfobserveScalerReplicaDown"),
                    _fires("12m", "OfobserveScalerReplicaDown", severity="warning",
                           job="ofobserve-scaler", instance="a"),
                    _fires("12m", "OfobserveScalerDown"),
                    _fires("3m", "OfobserveScalerSourceStale"),
                    _fires("12m", "OfobserveScalerSourceStale", severity="warning",
                           namespace="shop", function="fn"),
                    _fires("4m", "OfobserveScalerSourceErrors"),
                    _fires("12m", "OfobserveScalerSourceErrors", severity="warning",
                           source="direct", reason="timeout"),
                    _fires("2m", "OfobserveScalerRPCErrors"),
                    _fires("14m", "OfobserveScalerRPCErrors", severity="warning",
                           grpc_method="GetMetrics"),
                ],
            },
            {
                "interval": "1m",
                "input_series": [_series("up", "0x10", instance="a")],
                "alert_rule_test": [
                    _fires("4m", "OfobserveScalerDown"),
                    _fires("6m", "OfobserveScalerDown", severity="critical"),
                ],
            },
            {
                # ten probes a minute, one of them later than 0.1 s (10 %, p99 0.235 s):
                # pending from 1m (the first rate), firing after eventLoopLagFor (10m);
                # "near" has 0.5 % late (p99 below 0.1 s), "fast" none, and "spike" is
                # slow for 4 minutes only (p99 above 0.1 s for about 6 of them)
                "interval": "1m",
                "input_series": [
                    *_lag("slow", {"0.05": "0+9x30", "0.1": "0+9x30", "0.25": "0+10x30",
                                   "+Inf": "0+10x30"}),
                    *_lag("near", {"0.05": "0+199x30", "0.1": "0+199x30", "0.25": "0+200x30",
                                   "+Inf": "0+200x30"}),
                    *_lag("fast", {"0.001": "0+600x30", "0.1": "0+600x30", "+Inf": "0+600x30"}),
                    *_lag("spike", {"0.1": "0+9x4 236+200x25", "+Inf": "0+10x4 240+200x25"}),
                ],
                "alert_rule_test": [
                    _fires("10m", "OfobserveScalerEventLoopLag"),
                    _fires("11m", "OfobserveScalerEventLoopLag", severity="warning",
                           instance="slow"),
                    _fires("25m", "OfobserveScalerEventLoopLag", severity="warning",
                           instance="slow"),
                ],
            },
        ],
    }  # fmt: skip


# --- golden -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", SETS)
def test_the_golden_output_matches(helm: str, helm_home: Path, value_set: str) -> None:
    """``helm template`` of each value set equals tests/golden/chart/<set>.yaml (regenerate
    with ``.venv/bin/python scripts/chart_files.py``)."""
    golden = GOLDEN / f"{value_set}.yaml"
    assert template(helm, helm_home, value_set, GOLDEN_KUBE_VERSION) == golden.read_text()


# --- a real API server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(kube_apiserver: KubeAPI) -> KubeAPI:
    """The session's API server with the stand-in CRDs and the namespaces the chart writes to."""
    for crd in standin_crds():
        kube_apiserver.kubectl("apply", "-f", "-", input=json.dumps(crd))
    kube_apiserver.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        *(f"crd/{crd['metadata']['name']}" for crd in standin_crds()),
    )  # fmt: skip
    for namespace in ("keda", "cert-manager", "monitoring", "shop", "media", NAMESPACE):
        kube_apiserver.ensure_namespace(namespace)
    return kube_apiserver


def _helm_on(cluster: KubeAPI, helm: str, home: Path, *args: str) -> str:
    return run_helm(helm, home, "--kubeconfig", str(cluster.kubeconfig), *args).stdout


def _stored(cluster: KubeAPI, obj: dict[str, Any]) -> dict[str, Any] | None:
    namespace = obj["metadata"].get("namespace")
    kind = obj["kind"].lower()
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    resource = f"{kind}.{group}" if group and group not in ("apps", "v1") else kind
    args = [resource, obj["metadata"]["name"], *(["-n", namespace] if namespace else [])]
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored


def _release(cluster: KubeAPI, helm: str, home: Path) -> list[dict[str, Any]]:
    return objects(_helm_on(cluster, helm, home, "get", "manifest", RELEASE, "-n", NAMESPACE))


def _can(
    cluster: KubeAPI, verb: str, resource: str, namespace: str, account: str = "ofobserve-scaler"
) -> bool:
    subject = f"system:serviceaccount:{NAMESPACE}:{account}"
    result = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace,
                             f"--as={subject}", check=False)  # fmt: skip
    return result.stdout.strip() == "yes"


def test_install_upgrade_and_uninstall_on_the_real_api_server(
    cluster: KubeAPI, helm: str, helm_home: Path
) -> None:
    require_tool("kubectl")
    chart = str(CHART)
    # install: defaults (cert-manager chain, ClusterTriggerAuthentication, ClusterRole)
    _helm_on(cluster, helm, helm_home, "install", RELEASE, chart, "-n", NAMESPACE)
    installed = _release(cluster, helm, helm_home)
    assert {o["kind"] for o in installed} >= {
        "Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "PodDisruptionBudget", "NetworkPolicy", "Certificate", "ClusterIssuer",
        "ClusterTriggerAuthentication", "ServiceMonitor", "PrometheusRule", "ConfigMap",
    }  # fmt: skip
    for obj in installed:
        stored = _stored(cluster, obj)
        assert stored is not None, _name(obj)
        if _is(obj, "Deployment"):
            # 1.20 has no gRPC probes: the chart asked for a TCP probe, and it was kept
            container = stored["spec"]["template"]["spec"]["containers"][0]
            assert container["livenessProbe"]["tcpSocket"] == {"port": "health"}
        if obj["kind"] == "PodDisruptionBudget":
            assert stored["apiVersion"] == "policy/v1beta1"
        assert dropped_fields(obj, stored) == [], _name(obj)
    assert _can(cluster, "list", "pods", "shop")
    assert _can(cluster, "watch", "pods", "shop")
    assert not _can(cluster, "get", "pods", "shop")
    assert not _can(cluster, "get", "secrets", "shop")
    assert not _can(cluster, "list", "endpointslices.discovery.k8s.io", "shop")
    controller = "ofobserve-controller"
    assert _can(cluster, "patch", "functions.core.openfunction.io", "shop", controller)
    assert _can(cluster, "create", "prometheusrules.monitoring.coreos.com", "shop", controller)
    assert _can(cluster, "update", "leases.coordination.k8s.io", NAMESPACE, controller)
    assert not _can(cluster, "update", "leases.coordination.k8s.io", "shop", controller)
    assert not _can(cluster, "get", "secrets", "shop", controller)
    assert not _can(cluster, "delete", "functions.core.openfunction.io", "shop", controller)

    # upgrade: certificates from existing Secrets, three replicas
    _helm_on(cluster, helm, helm_home, "upgrade", RELEASE, chart, "-n", NAMESPACE,
             *values_args("existing-secret"))  # fmt: skip
    upgraded = _release(cluster, helm, helm_home)
    assert not [o for o in upgraded if o["kind"] in ("Certificate", "ClusterIssuer")]
    for gone in (o for o in installed if o["kind"] in ("Certificate", "ClusterIssuer")):
        assert _stored(cluster, gone) is None, _name(gone)
    [deploy] = [o for o in upgraded if _is(o, "Deployment")]
    stored = _stored(cluster, deploy)
    assert stored is not None
    assert stored["spec"]["replicas"] == 3
    volumes = stored["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "ofobserve-scaler-tls-manual",
                                      "defaultMode": 420}} in volumes  # fmt: skip

    # upgrade: two watched namespaces, a Role in each instead of the ClusterRole
    _helm_on(cluster, helm, helm_home, "upgrade", RELEASE, chart, "-n", NAMESPACE,
             *values_args("watch-namespaces"))  # fmt: skip
    watched = _release(cluster, helm, helm_home)
    assert sorted(o["metadata"]["namespace"] for o in watched if _is(o, "Role")) == [
        "media", "shop"
    ]  # fmt: skip
    assert _can(cluster, "patch", "functions.core.openfunction.io", "shop", "ofobserve-controller")
    assert not _can(cluster, "list", "functions.core.openfunction.io", "keda",
                    "ofobserve-controller")  # fmt: skip
    assert _can(cluster, "list", "pods", "shop")
    assert _can(cluster, "watch", "pods", "shop")
    assert not _can(cluster, "list", "pods", "keda")
    assert not _can(cluster, "watch", "pods", "keda")
    for obj in watched:
        stored = _stored(cluster, obj)
        assert stored is not None, _name(obj)
        assert dropped_fields(obj, stored) == [], _name(obj)

    # uninstall: nothing of the release is left
    _helm_on(cluster, helm, helm_home, "uninstall", RELEASE, "-n", NAMESPACE)
    for obj in installed + upgraded + watched:
        assert _stored(cluster, obj) is None, _name(obj)


def test_the_controller_may_write_dashboards_where_its_settings_put_them(
    helm: str, helm_home: Path
) -> None:
    """A grafana.namespace in controller.settings (defaults or an override) gets the
    dashboards Role too, not only the fleet namespace."""
    settings = {
        "defaults": {"grafana": {"namespace": "grafana"}},
        "overrides": [
            {"match": {"namespace": "shop"}, "settings": {"grafana": {"namespace": "g2"}}}
        ],
    }
    values = ("--set", "watchNamespaces={shop}",
              "--set-json", f"controller.settings={json.dumps(settings)}")  # fmt: skip
    found = objects(template(helm, helm_home, "defaults", GOLDEN_KUBE_VERSION, *values))
    roles = {
        r["metadata"]["namespace"]: r["rules"]
        for r in _roles(found, "controller")
        if r["metadata"]["name"].endswith("-dashboards")
    }
    assert roles == dict.fromkeys((NAMESPACE, "grafana", "g2"), CONTROLLER_RULES[3:5])
