"""Hypothesis properties of the pure core: determinism, valid unique names, round trips."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ofobserve.conventions import dashboard_uid
from ofobserve.errors import Location
from ofobserve.loading import build_functions, resolve_subjects
from ofobserve.render import render_all
from ofobserve.serialize import serialize, serialize_stream, serialize_tree
from ofobserve.settings import Config

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

dns_labels = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@st.composite
def function_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Function document of any runtime, in either API version."""
    name = draw(dns_labels)
    namespace = draw(st.one_of(st.none(), dns_labels))
    runtime = draw(st.sampled_from(["knative", "async", "keda"]))
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(lo, 1), 50))
    serving: dict[str, Any] = {"scaleOptions": {"minReplicas": lo, "maxReplicas": hi}}
    if runtime == "async":
        serving["bindings"] = {
            "in": {
                "type": draw(st.sampled_from(["bindings.kafka", "bindings.cron", "bindings.redis"]))
            }
        }
        serving["triggers"] = {"dapr": [{"name": "in"}]}
    else:
        serving["triggers"] = {"http": {"port": 8080, "engine": runtime}}
    profile = draw(st.sampled_from([None, "ofobserve", "knative", "dapr", "keda-http"]))
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if profile:
        metadata["annotations"] = {"ofobserve.io/profile": profile}
    return {
        "apiVersion": "core.openfunction.io/v1beta2",
        "kind": "Function",
        "metadata": metadata,
        "spec": {"image": "x", "serving": serving},
    }


def _unique_by_key(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        meta = doc["metadata"]
        seen.setdefault((meta.get("namespace", "default"), meta["name"]), doc)
    return list(seen.values())


def _render(docs: list[dict[str, Any]]) -> dict[str, bytes]:
    documents = [(Location("gen.yaml", i), doc) for i, doc in enumerate(docs)]
    subjects = resolve_subjects(build_functions(documents), Config())
    return serialize_tree(render_all(subjects))


@settings(max_examples=60, deadline=None)
@given(st.lists(function_docs(), min_size=1, max_size=8).map(_unique_by_key), st.randoms())
def test_render_is_deterministic_and_order_independent(
    docs: list[dict[str, Any]], rnd: random.Random
) -> None:
    first = _render(docs)
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    assert _render(shuffled) == first
    assert _render(docs) == first


@settings(max_examples=60, deadline=None)
@given(st.lists(function_docs(), min_size=1, max_size=8).map(_unique_by_key))
def test_generated_object_names_are_valid_and_unique(docs: list[dict[str, Any]]) -> None:
    documents = [(Location("gen.yaml", i), doc) for i, doc in enumerate(docs)]
    subjects = resolve_subjects(build_functions(documents), Config())
    seen: set[tuple[str, str, str, str]] = set()
    for artifact in render_all(subjects):
        content = artifact.content
        if "kind" not in content:  # promtool test files are not Kubernetes objects
            continue
        meta = content["metadata"]
        # Only the fleet dashboards span namespaces; they go where `kubectl apply -n` says.
        name, namespace = meta["name"], meta.get("namespace", "" if artifact.function else "-")
        assert len(name) <= 253, name
        assert DNS_SUBDOMAIN.match(name), name
        assert namespace == "-" or DNS_LABEL.match(namespace), namespace
        for value in meta.get("labels", {}).values():
            assert len(value) <= 63
        key = (content["apiVersion"], content["kind"], namespace, name)
        if content["kind"] != "Function":  # patches target the Function itself
            assert key not in seen, key
        seen.add(key)
    assert len({a.path for a in render_all(subjects)}) == len(render_all(subjects))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_serialization_round_trips(value: Any) -> None:
    assert yaml.safe_load(serialize(value, "yaml")) == value
    assert json.loads(serialize(value, "json")) == value
    assert serialize(value, "yaml") == serialize(value, "yaml")


@settings(max_examples=50, deadline=None)
@given(st.lists(function_docs(), min_size=1, max_size=4).map(_unique_by_key))
def test_stream_round_trips(docs: list[dict[str, Any]]) -> None:
    documents = [(Location("gen.yaml", i), doc) for i, doc in enumerate(docs)]
    artifacts = render_all(resolve_subjects(build_functions(documents), Config()))
    stream = serialize_stream(artifacts, "yaml")
    assert list(yaml.load_all(stream, Loader=yaml.CSafeLoader)) == [a.content for a in artifacts]
    lines = serialize_stream(artifacts, "json").splitlines()
    assert [json.loads(line)["content"] for line in lines] == [a.content for a in artifacts]


_dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
_dns_name = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,80}[a-z0-9])?", fullmatch=True)


@given(st.lists(st.tuples(_dns_label, _dns_name), min_size=2, max_size=30, unique=True))
def test_dashboard_uids_are_short_valid_and_distinct(keys: list[tuple[str, str]]) -> None:
    uids = [dashboard_uid(ns, name) for ns, name in keys]
    assert len(set(uids)) == len(keys)
    for uid in uids:
        assert len(uid) <= 40
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", uid), uid


# --- the fast writers agree with the libraries they stand in for --------------------------

_TRICKY = st.sampled_from(
    ["", " ", "-", "?", ":", "# x", "a: b", "- a", "'", '"', "null", "true", "No", "1.5",
     "0x1f", "12:30", "2001-12-14", "<<", "=", "~", "é", "a\nb", "a\n", "\t", "{x}", "[1]",
     "*a", "&a", "!t", "%x", "@x", "`x", "x  ", "\\", "sum by (le) (rate(x[5m]))"]
)  # fmt: skip
_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_SCALARS = (
    _ASCII | _TRICKY | st.integers(-(10**6), 10**12) | st.booleans() | st.none()
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ASCII | _TRICKY, inner,
                                                                max_size=4),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_ASCII | _TRICKY, _VALUES, min_size=1, max_size=5))
def test_the_fast_yaml_writer_writes_what_pyyaml_writes(document: dict[str, Any]) -> None:
    from ofobserve.serialize import _pyyaml, dump_yaml

    assert dump_yaml(document) == _pyyaml(document)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_the_fast_json_writer_writes_what_json_dumps_writes(value: Any) -> None:
    from ofobserve.grafana import json_text

    expected = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert json_text(value) == expected
