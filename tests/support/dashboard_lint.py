"""The rules of grafana/dashboard-linter, written from its rule list (the Go tool cannot be
installed here), plus ofobserve's own: title, description and unit on every panel, and a
non-editable dashboard with a uid.

:func:`lint` returns one message per violation, ``"<uid> / <panel>: <rule>: <detail>"``.
PromQL parsing is checked elsewhere, by promtool and the real Prometheus.
"""

from __future__ import annotations

import json
import re
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Unit ids from Grafana's valueFormats/categories.ts that dashboards may use.
GRAFANA_UNITS = frozenset(
    {
        "short", "none", "percent", "percentunit", "s", "ms", "µs", "ns", "m", "h", "d",
        "dtdurations", "bytes", "decbytes", "bits", "reqps", "ops", "rps", "wps", "cps",
        "bool", "bool_yes_no", "bool_on_off",
    }
)  # fmt: skip
RANGE = re.compile(r"\[([^\]]*)\]")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
COUNTER_CALL = re.compile(r"\b(rate|irate|increase)\(\s*$")
#: A metric selector: a name directly followed by ``{`` (every query here has matchers).
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})")
#: Series of shared exporters, whose ``instance`` is the exporter's, not the workload's.
FLEET_EXPORTERS = ("kube_", "container_", "keda_")
#: On a function's dashboard (``$instance`` = its pods) the scaler is a shared component too.
FUNCTION_DASHBOARD_SHARED = (*FLEET_EXPORTERS, "ofobserve_scaler_")
INSTANCE_MATCHER = 'instance=~"$instance"'
#: Counters whose names do not end in ``_total`` (OpenCensus exporters, histogram parts).
COUNTER_SUFFIXES = ("_total", "_count", "_bucket")
OPENCENSUS_COUNTERS = (
    "revision_request_count",
    "dapr_component_input_binding_count",
    "dapr_component_pubsub_ingress_count",
)


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows are layout only)."""
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def lint(dashboard: dict[str, Any]) -> list[str]:
    uid = dashboard.get("uid", "")
    problems = []
    if not uid or len(uid) > 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", uid):
        problems.append(f"{uid!r}: uid: missing or not a valid Grafana uid")
    if dashboard.get("editable") is not False:
        problems.append(f"{uid}: editable: generated dashboards must not be editable")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    first = dashboard["templating"]["list"][0] if variables else {}
    if first.get("name") != "datasource" or first.get("type") != "datasource":
        problems.append(f"{uid}: template-datasource-rule: first variable must be 'datasource'")
    elif first.get("query") != "prometheus":
        problems.append(f"{uid}: template-datasource-rule: datasource variable not prometheus")
    shared = (
        FUNCTION_DASHBOARD_SHARED
        if "ofobserve-function" in dashboard.get("tags", [])
        else FLEET_EXPORTERS
    )
    for panel in panels(dashboard):
        found = _panel(panel, variables, shared)
        problems += [f"{uid} / {panel.get('title', '?')}: {p}" for p in found]
    return problems


def _panel(panel: dict[str, Any], variables: dict[str, Any], shared: tuple[str, ...]) -> list[str]:
    problems = []
    for field in ("title", "description"):
        if not panel.get(field):
            problems.append(f"panel-{field}-rule: no {field}")
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    if unit not in GRAFANA_UNITS:
        problems.append(f"panel-units-rule: unit {unit!r} is not a Grafana unit")
    if panel.get("datasource") != DATASOURCE:
        problems.append(f"panel-datasource-rule: datasource {panel.get('datasource')!r}")
    targets = panel.get("targets") or []
    if not targets:
        problems.append("panel-targets-rule: no targets")
    for target in targets:
        if target.get("datasource") != DATASOURCE:
            problems.append(f"panel-datasource-rule: target {target.get('refId')} datasource")
        problems += _expression(target.get("expr", ""), "instance" in variables, shared)
    return problems + _links_use_kept_fields(panel)


def _links_use_kept_fields(panel: dict[str, Any]) -> list[str]:
    """A data link can only read ``${__data.fields.X}`` if X is still in the frame: an
    ``organize`` transformation that excludes X leaves the link empty (hide it instead)."""
    excluded = {
        name
        for t in panel.get("transformations", [])
        if t.get("id") == "organize"
        for name, gone in t.get("options", {}).get("excludeByName", {}).items()
        if gone
    }
    used = set(re.findall(r"\$\{__data\.fields\.([A-Za-z0-9_]+)", json.dumps(panel)))
    return [
        f"link-field-rule: a link reads {f!r}, which organize excludes"
        for f in sorted(used & excluded)
    ]


def _expression(expr: str, has_instance: bool, shared: tuple[str, ...]) -> list[str]:
    problems = []
    if not expr.strip():
        problems.append("target-promql-rule: empty expression")
    for window in RANGE.findall(STRING.sub('""', expr)):
        if window != "$__rate_interval":
            problems.append(f"target-rate-interval-rule: [{window}] in {expr}")
    for match in SELECTOR.finditer(expr):
        name, matchers = match.group(1), match.group(2)
        if _is_counter(name) and not COUNTER_CALL.search(expr[: match.start()]):
            problems.append(f"target-counter-agg-rule: {name} not in rate/irate/increase")
        own = ":" not in name and not name.startswith(shared)
        if has_instance and own and INSTANCE_MATCHER not in matchers:
            problems.append(f"target-instance-rule: {name}{matchers} lacks {INSTANCE_MATCHER}")
    return problems


def _is_counter(name: str) -> bool:
    return name.endswith(COUNTER_SUFFIXES) or name in OPENCENSUS_COUNTERS
