"""Everything `render` writes for a cluster survives the real kube-apiserver unchanged.

Each rendered Kubernetes object (PodMonitors, PrometheusRules, ScaledObjects,
TriggerAuthentications, GrafanaDashboards, ConfigMaps) is created in a fresh namespace,
with the upstream CRDs of ../shared/crds installed, and read back: a field the server
pruned or changed fails the test. Each Function patch (identity label, scaling wiring,
OTEL environment) is applied with ``kubectl patch --type merge`` to its source Function as
stored, and must land whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG, EXAMPLES, run_cli
from tests.support.kube import KubeAPI, dropped_fields, storable_function
from tests.support.patches import merge_patch
from tests.support.tools import REPO

NOTES = REPO / "examples" / "notes"


def _objects(tree: Path) -> list[tuple[str, dict[str, Any]]]:
    """(relative path, object) for every rendered file that is a Kubernetes object."""
    found = []
    for path in sorted(tree.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= doc.keys():
            found.append((path.relative_to(tree).as_posix(), doc))
    return found


def _sources(*folders: Path) -> dict[tuple[str, str], dict[str, Any]]:
    sources = {}
    for folder in folders:
        for path in folder.glob("*.yaml"):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "Function":
                    namespace = doc["metadata"].get("namespace", "default")
                    sources[(namespace, doc["metadata"]["name"])] = doc
    return sources


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("roundtrip")
    inputs = {"examples": [str(EXAMPLES), "-c", str(EXAMPLE_CONFIG)], "notes": [str(NOTES)]}
    for name, args in inputs.items():
        result = run_cli("-q", "render", *args, "-o", str(out / name))
        assert result.exit_code == 0, result.stderr
    return out


#: Merge patches of objects others own (tests/test_telemetry.py applies it with kubectl).
PATCHES = ("monitors/knative-config-observability.yaml",)


def test_every_rendered_object_is_stored_unchanged(rendered: Path, kube_apiserver: KubeAPI) -> None:
    objects = [
        o for o in _objects(rendered) if o[1]["kind"] != "Function" and not o[0].endswith(PATCHES)
    ]
    kinds = {o["kind"] for _, o in objects}
    assert {"PodMonitor", "PrometheusRule", "ConfigMap", "GrafanaDashboard"} <= kinds
    assert {"Function", "TriggerAuthentication"} <= {o["kind"] for _, o in _objects(rendered)}
    namespace = kube_apiserver.fresh_namespace("render")
    for index, (path, obj) in enumerate(objects):
        sent = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        sent["metadata"]["name"] = f"o{index}-{obj['metadata']['name']}"[:63]
        stored = kube_apiserver.apply_and_read_back(sent)
        assert dropped_fields(sent, stored) == [], path


def test_every_function_patch_lands_whole(rendered: Path, kube_apiserver: KubeAPI) -> None:
    """(The notes' sources lose their older fields when stored: that is the warning's point.
    What each patch adds must all be kept.) v1beta1 Functions are left out: this server has
    no OpenFunction conversion webhook, so it stores them as v1beta2 by relabelling, which
    prunes v1beta1's own fields."""
    sources = _sources(EXAMPLES, NOTES)
    every = [o for o in _objects(rendered) if o[1]["kind"] == "Function"]
    patches = [o for o in every if o[1]["apiVersion"].endswith("/v1beta2")]
    assert len(every) - len(patches) == 2  # nodejs-sample's label and OTEL patches
    assert {path.split("/")[1] for path, _ in patches} == {"patches", "scaling", "telemetry"}
    namespace = kube_apiserver.fresh_namespace("patch")
    for index, (path, patch) in enumerate(patches):
        meta = patch["metadata"]
        source = storable_function(sources[(meta["namespace"], meta["name"])])
        name = f"fn-{index}"
        stored = kube_apiserver.apply_and_read_back(
            {**source, "metadata": {"name": name, "namespace": namespace}}
        )
        change = {"spec": patch["spec"]}
        patched = kube_apiserver.merge_patch("functions", namespace, name, change)
        assert dropped_fields(merge_patch(stored, change), patched) == [], path
