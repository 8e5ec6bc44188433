"""A real Kubernetes API server 1.20 (etcd + kube-apiserver) on 127.0.0.1, for the whole
session, with the upstream CRDs from ``../shared/crds`` installed.

``../shared/tools/k8s/start-apiserver.sh`` starts it on free ports and prints the kubeconfig
path; ``stop-apiserver.sh`` stops both processes by their recorded PIDs. Tests talk to it
through :class:`KubeAPI` (kubectl), each in a namespace of its own
(:meth:`KubeAPI.fresh_namespace`).

1.20 prunes undeclared fields silently (no strict field validation before 1.25), so
:func:`dropped_fields` compares what was sent with what was stored.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.tools import REPO, require_tool, unavailable

#: start-apiserver.sh waits for /readyz itself (K8S_READY_TIMEOUT); this bounds the script.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
KUBECTL_TIMEOUT = 60.0
ESTABLISHED_TIMEOUT = 60.0
FIELD_MANAGER = "ofobserve-tests"
#: Metadata the server fills in; never a sign of pruning.
SERVER_METADATA = frozenset(
    {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"}
)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def shared_dir() -> Path:
    """``../shared`` beside the repository, or ``$OFOBSERVE_SHARED_DIR``."""
    return Path(os.environ.get("OFOBSERVE_SHARED_DIR", REPO.parent / "shared"))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (all held open while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class KubeError(RuntimeError):
    pass


class KubeAPI:
    """kubectl against one API server. Every call passes ``--kubeconfig`` explicitly."""

    def __init__(self, kubectl: str, kubeconfig: Path, cache_dir: Path) -> None:
        self.kubectl_binary = kubectl
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir
        self._namespaces: set[str] = set()
        self._counter = itertools.count(1)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS``; raises :class:`KubeError` with stderr on failure if ``check``."""
        command = [
            self.kubectl_binary,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT
        )
        if check and result.returncode != 0:
            raise KubeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def get_json(self, *args: str, input: str | None = None) -> dict[str, Any]:
        """``kubectl get ARGS -o json``, parsed."""
        obj: dict[str, Any] = json.loads(
            self.kubectl("get", *args, "-o", "json", input=input).stdout
        )
        return obj

    def fresh_namespace(self, prefix: str = "t") -> str:
        """Create a namespace no other test uses; returns its name."""
        name = f"{prefix}-{os.getpid()}-{next(self._counter)}"
        self.ensure_namespace(name)
        return name

    def ensure_namespace(self, name: str) -> None:
        if name in self._namespaces:
            return
        existing = self.kubectl("get", "namespace", name, "-o", "name", check=False)
        if existing.returncode != 0:
            self.kubectl("create", "namespace", name)
        self._namespaces.add(name)

    def apply_and_read_back(self, obj: dict[str, Any], server_side: bool = False) -> dict[str, Any]:
        """Store ``obj`` (create, or server-side apply), then read it back as stored.

        Its namespace is created first when it has one and it does not exist yet. kubectl's
        own schema check is off (``--validate=false``): it refuses unknown fields before the
        server sees them, and these tests measure what the server itself keeps.
        """
        namespace = obj.get("metadata", {}).get("namespace")
        if namespace:
            self.ensure_namespace(namespace)
        document = json.dumps(obj)
        if server_side:
            apply = ("apply", "--server-side", f"--field-manager={FIELD_MANAGER}")
            self.kubectl(*apply, "--validate=false", "-f", "-", input=document)
        else:
            self.kubectl("create", "--validate=false", "-f", "-", input=document)
        stored = self.get_json("-f", "-", input=document)  # `get -f` answers with a List
        [item] = stored["items"] if stored.get("kind") == "List" else [stored]
        result: dict[str, Any] = item
        return result

    def merge_patch(
        self, resource: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """``kubectl patch --type merge`` an existing object (``resource`` as kubectl takes
        it: ``functions``, ``functions.core.openfunction.io``...); returns it as stored."""
        self.kubectl(
            "patch", resource, name, "-n", namespace, "--type", "merge", "-p", json.dumps(patch)
        )
        return self.get_json(resource, name, "-n", namespace)


def storable_function(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Function document with each Dapr component metadata ``value`` wrapped in
    a mapping. OpenFunction 1.2's CRD types ``value`` as an object, so its API server
    refuses the plain strings that OpenFunction's own samples write (docs/decisions.md);
    this lets the tests store such Functions to check everything else."""
    copy: dict[str, Any] = json.loads(json.dumps(doc))
    serving = copy.get("spec", {}).get("serving", {})
    for section in ("bindings", "pubsub", "states"):
        for component in serving.get(section, {}).values():
            for item in component.get("metadata", []):
                if not isinstance(item.get("value"), dict):
                    item["value"] = {"value": item.get("value")}
    return copy


def dropped_fields(sent: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Every path in ``sent`` that is missing from, or different in, ``stored`` (sorted).

    Paths are dotted (``spec.serving.labels``); list items are ``[0]``; a key that is not a
    plain word is quoted (``metadata.labels["ofobserve.io/function"]``). Fields only in
    ``stored`` are fine (defaults, status), as is server-filled metadata
    (:data:`SERVER_METADATA`). Numbers compare by value (``1 == 1.0``), booleans only with
    booleans.
    """
    found: list[str] = []
    for key, value in sent.items():
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in SERVER_METADATA}
        found += _dropped(value, stored, key, _join("", key))
    return sorted(found)


def _join(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _dropped(sent: Any, parent: Any, key: str | int, path: str) -> list[str]:
    """What of ``sent`` is not in ``parent[key]``."""
    if isinstance(key, int):
        if not isinstance(parent, list) or key >= len(parent):
            return [path]
    elif not isinstance(parent, dict) or key not in parent:
        return [path]
    stored = parent[key]
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [p for k, v in sent.items() for p in _dropped(v, stored, k, _join(path, k))]
    if isinstance(sent, list):
        if not isinstance(stored, list):
            return [path]
        return [p for i, v in enumerate(sent) for p in _dropped(v, stored, i, f"{path}[{i}]")]
    return [] if _same_scalar(sent, stored) else [path]


def _same_scalar(sent: Any, stored: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return type(sent) is type(stored) and sent == stored
    if isinstance(sent, int | float) and isinstance(stored, int | float):
        return sent == stored
    return type(sent) is type(stored) and bool(sent == stored)


def _established(api: KubeAPI) -> set[str]:
    """Names of the CRDs whose Established condition is True."""
    crds = api.get_json("customresourcedefinitions")["items"]
    return {
        crd["metadata"]["name"]
        for crd in crds
        for condition in crd.get("status", {}).get("conditions") or []
        if condition["type"] == "Established" and condition["status"] == "True"
    }


class APIServer:
    """One etcd + kube-apiserver pair, started and stopped by the shared scripts.

    ``state_dir`` holds their data, certificates, logs, PIDs and the kubeconfig.
    """

    def __init__(self, state_dir: Path) -> None:
        self.tools = shared_dir() / "tools" / "k8s"
        self.crds = shared_dir() / "crds"
        self.state_dir = state_dir
        self.bin_dir = Path(
            os.environ.get("K8S_BIN", Path.home() / ".cache" / "ofobserve-k8s-1.20.2")
        )
        self.etcd_port, self.peer_port, self.api_port = free_ports(3)
        self.started = False

    def check_tools(self) -> str:
        """The kubectl to use; :func:`unavailable` when anything needed is missing."""
        if not (self.tools / "start-apiserver.sh").is_file():
            unavailable(
                f"{self.tools}/start-apiserver.sh not found (../shared/tools beside the repo)"
            )
        if not self.crds.is_dir():
            unavailable(f"CRD schemas not found at {self.crds} (../shared/crds beside the repo)")
        if not (self.bin_dir / "etcd").exists() and shutil.which("etcd") is None:
            unavailable("etcd is not installed (Debian package etcd-server)")
        for tool in ("openssl", "curl", "xz"):
            require_tool(tool)
        return require_tool("kubectl")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "K8S_BIN": str(self.bin_dir),
            "K8S_STATE_DIR": str(self.state_dir),
            "K8S_ETCD_PEER_PORT": str(self.peer_port),
        }

    def start(self) -> KubeAPI:
        """Start both processes, install the CRDs, wait until every one is Established."""
        kubectl = self.check_tools()
        self.started = True  # from here on, stop() has PID files to look at
        result = subprocess.run(
            [
                "bash",
                str(self.tools / "start-apiserver.sh"),
                str(self.etcd_port),
                str(self.api_port),
            ],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        if result.returncode != 0:
            raise KubeError(f"start-apiserver.sh failed: {result.stderr.strip()}")
        api = KubeAPI(kubectl, Path(result.stdout.strip()), self.state_dir / "kubectl-cache")
        self._install_crds(api)
        return api

    def _install_crds(self, api: KubeAPI) -> None:
        converted = subprocess.run(
            [sys.executable, str(self.tools / "crds-for-1.20.py"), str(self.crds)],
            capture_output=True,
            text=True,
            check=True,
            timeout=KUBECTL_TIMEOUT,
        ).stdout
        created = api.kubectl("create", "-f", "-", "-o", "name", input=converted).stdout.split()
        names = {name.split("/", 1)[1] for name in created}
        assert names, f"no CRDs in {self.crds}"
        # Not `kubectl wait`: kubectl 1.32 fails at once on a CRD without status.conditions
        # yet, instead of waiting.
        deadline = time.monotonic() + ESTABLISHED_TIMEOUT
        while pending := names - _established(api):
            if time.monotonic() > deadline:
                raise KubeError(f"CRDs not Established in time: {sorted(pending)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop both processes by PID; safe to call when start failed half-way."""
        if not self.started:
            return
        subprocess.run(
            ["bash", str(self.tools / "stop-apiserver.sh"), str(self.api_port)],
            env=self._env(),
            capture_output=True,
            timeout=STOP_TIMEOUT,
            check=False,
        )
        self.started = False
