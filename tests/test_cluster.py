"""--from-cluster against a real HTTP peer that answers like the Kubernetes API.

The real ``kubernetes`` client talks HTTP to a small server on 127.0.0.1 that serves the two
list calls ofobserve makes (Functions and Servings); no Kubernetes API server can be
installed here. It proves the request paths, the resolution of generated names, and that the
keda-http PodMonitor appears once the route name is known.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.conftest import EXAMPLES, run_cli


def _function(file: str) -> dict[str, object]:
    doc = yaml.safe_load((EXAMPLES / file).read_text())
    doc["metadata"].setdefault("namespace", "default")
    return doc


FUNCTIONS = [
    dict(
        _function("keda-http-function.yaml"), status={"serving": {"resourceRef": "serving-k7x2p"}}
    ),
    dict(_function("order-processor.yaml"), status={"serving": {"resourceRef": "serving-q9z4m"}}),
]
SERVINGS = [
    {
        "metadata": {"name": "serving-k7x2p", "namespace": "default"},
        "status": {
            "resourceRef": {
                "http.keda.sh/deployment": "serving-k7x2p-deployment-v100-abcde",
                "http.keda.sh/httpscaledobject": "serving-k7x2p-scaler-fghij",
            }
        },
    },
    {
        "metadata": {"name": "serving-q9z4m", "namespace": "shop"},
        "status": {
            "resourceRef": {
                "Async/workload": "serving-q9z4m-deployment-v210-xxxxx",
                "Async/scaler": "serving-q9z4m-scaler-yyyyy",
            }
        },
    },
]


class _API(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _API.requests.append(self.path.split("?")[0])
        parts = self.path.split("?")[0].strip("/").split("/")
        plural, namespace = parts[-1], parts[-2] if "namespaces" in parts else None
        items = {"functions": FUNCTIONS, "servings": SERVINGS}.get(plural)
        if items is None:
            self.send_response(404)
            self.end_headers()
            return
        items = [i for i in items if namespace is None or i["metadata"]["namespace"] == namespace]  # type: ignore[index]
        body = json.dumps(
            {"apiVersion": "core.openfunction.io/v1beta2", "kind": "List", "items": items}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _API)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [
                    {
                        "name": "t",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"},
                    }
                ],
                "users": [{"name": "t", "user": {"token": "x"}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    _API.requests.clear()
    yield path
    server.shutdown()
    server.server_close()


def test_from_cluster_resolves_generated_names(kubeconfig: Path) -> None:
    result = run_cli("render", "--from-cluster", "-o", "-", "--only", "monitors")
    assert result.exit_code == 0, result.stderr
    assert _API.requests == [
        "/apis/core.openfunction.io/v1beta2/functions",
        "/apis/core.openfunction.io/v1beta2/servings",
    ]
    monitors = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)}
    assert sorted(monitors) == ["ofobserve-keda-http-function", "ofobserve-order-processor"]
    keda = monitors["ofobserve-keda-http-function"]["spec"]["podMetricsEndpoints"][0]
    assert keda["metricRelabelings"][0]["regex"] == "default;serving-k7x2p-scaler-fghij"
    assert "cluster[0]" not in result.stderr


def test_from_cluster_one_namespace(kubeconfig: Path) -> None:
    result = run_cli("render", "--from-cluster", "-n", "shop", "-o", "-", "--only", "patches")
    assert result.exit_code == 0, result.stderr
    assert _API.requests == [
        "/apis/core.openfunction.io/v1beta2/namespaces/shop/functions",
        "/apis/core.openfunction.io/v1beta2/namespaces/shop/servings",
    ]
    [patch] = yaml.safe_load_all(result.stdout)
    assert patch["metadata"] == {"name": "order-processor", "namespace": "shop"}


def test_from_cluster_bad_function_names_the_cluster_item(kubeconfig: Path) -> None:
    broken = dict(FUNCTIONS[1], metadata={"name": "Bad_Name", "namespace": "shop"})
    FUNCTIONS.append(broken)
    try:
        result = run_cli("validate", "--from-cluster")
    finally:
        FUNCTIONS.pop()
    assert result.exit_code == 1
    assert "error: cluster[2] metadata.name: 'Bad_Name' is not a DNS-1123 label" in result.stderr
