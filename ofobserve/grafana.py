"""grafanalib glue: panel specs to grafanalib objects, and the one post-processing step.

Pure, no I/O. Builders describe dashboards as :class:`Row` and :class:`Panel` specs (plain
data, also what the generated docs list); :func:`build_dashboard_json` lays them out with
grafanalib and then fixes, in one place, what grafanalib 0.7.1 gets wrong for current
Grafana (docs/decisions.md, "Dashboards"):

- every panel and target gets the datasource ``{"type": "prometheus", "uid": "${datasource}"}``
  (grafanalib writes a bare string or nothing);
- ``schemaVersion`` is raised to 39 and the dashboard is ``editable: false``;
- grafanalib's legacy defaults that change what Grafana draws are dropped: a panel's
  ``maxDataPoints: 100`` (caps resolution) and a target's ``intervalFactor: 2`` (halves
  it), plus ``step``, ``metric``, Graphite's ``target``, and the pre-v5 keys;
- keys whose value is ``None`` are dropped, so the files hold only what Grafana reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import attr
import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

SCHEMA_VERSION = 39
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
RATE_INTERVAL = "$__rate_interval"
GRID_WIDTH = 24
PANEL_HEIGHT = 8
#: Dashboard keys of the pre-v5 JSON model that grafanalib still writes.
LEGACY_KEYS = ("__inputs", "rows", "style", "hideControls", "sharedCrosshair", "gnetId", "version")
LEGACY_PANEL_KEYS = ("editable", "error", "maxDataPoints")
LEGACY_TARGET_KEYS = ("intervalFactor", "step", "metric", "target", "query")
PanelKind = Literal["timeseries", "stat", "heatmap", "table"]


@dataclass(frozen=True)
class Query:
    """One target: a PromQL expression and its legend."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    format: Literal["time_series", "heatmap", "table"] = "time_series"


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Column:
    """A table column from one query's value: its header and unit."""

    header: str
    unit: str


@dataclass(frozen=True)
class Panel:
    """What a panel shows; layout and JSON come from :func:`build_dashboard_json`."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: PanelKind = "timeseries"
    #: Threshold lines drawn on a time series, or colour steps of a stat: (value, colour).
    thresholds: tuple[tuple[float, str], ...] = ()
    base_colour: str = "green"  # below the first threshold
    width: int = 12
    links: tuple[Link, ...] = ()
    #: Table only: one column per query, and the field whose value opens a dashboard.
    columns: tuple[Column, ...] = ()
    link_field: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query variable over a label; ``all`` adds an All option matching ``.*``."""

    name: str
    label: str
    query: str
    all: bool = True


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    rows: tuple[Row, ...]
    datasource: str
    variables: tuple[Variable, ...] = ()
    links: tuple[Link, ...] = ()
    dashboard_links_tag: str = ""  # a dropdown of the dashboards with this tag
    time_from: str = "now-6h"
    refresh: str = "30s"


@attr.s
class _Target(g.Target):  # type: ignore[misc]
    """grafanalib's Target plus the ``exemplar`` switch it lacks."""

    exemplar: bool = attr.ib(default=False)

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["exemplar"] = self.exemplar
        return data


def _targets(panel: Panel) -> list[Any]:
    target: Any = _Target  # attrs fields inherited from an untyped base
    return [
        target(
            expr=q.expr,
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            instant=q.instant,
            format=q.format,
            exemplar=q.exemplar,
        )
        for i, q in enumerate(panel.queries)
    ]


def _steps(panel: Panel) -> list[dict[str, Any]]:
    base = {"color": panel.base_colour, "value": None}
    return [base] + [{"color": colour, "value": value} for value, colour in panel.thresholds]


def _to_grafanalib(panel: Panel, pos: g.GridPos, panel_id: int) -> Any:
    common: dict[str, Any] = {
        "id": panel_id,
        "title": panel.title,
        "description": panel.description,
        "targets": _targets(panel),
        "gridPos": pos,
        "links": [{"title": link.title, "url": link.url} for link in panel.links],
    }
    if panel.kind == "timeseries":
        return g.TimeSeries(
            **common,
            unit=panel.unit,
            thresholds=_steps(panel),
            thresholdsStyleMode="line" if panel.thresholds else "off",
            tooltipMode="multi",
        )
    if panel.kind == "stat":
        return g.Stat(
            **common,
            format=panel.unit,
            reduceCalc="lastNotNull",
            thresholds=_steps(panel),
            colorMode="value",
        )
    if panel.kind == "heatmap":
        return g.Heatmap(
            **common,
            dataFormat="tsbuckets",
            yBucketBound="upper",
            hideZeroBuckets=True,
            yAxis=g.YAxis(format=panel.unit),
            extraJson={"fieldConfig": {"defaults": {"unit": panel.unit}}},
        )
    return g.Table(
        **common,
        unit=panel.unit,
        overrides=_column_overrides(panel),
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ],
    )


def _column_overrides(panel: Panel) -> list[dict[str, Any]]:
    overrides = []
    for i, column in enumerate(panel.columns):
        overrides.append(
            {
                "matcher": {"id": "byName", "options": f"Value #{chr(ord('A') + i)}"},
                "properties": [
                    {"id": "displayName", "value": column.header},
                    {"id": "unit", "value": column.unit},
                ],
            }
        )
    if panel.link_field:
        # Hidden, not excluded: a link can only use fields that are still in the frame.
        overrides.append(
            {
                "matcher": {"id": "byName", "options": panel.link_field},
                "properties": [{"id": "custom.hidden", "value": True}],
            }
        )
        overrides.append(
            {
                "matcher": {"id": "byName", "options": "function"},
                "properties": [
                    {
                        "id": "links",
                        "value": [
                            {
                                "title": "Open the function's dashboard",
                                "url": f"/d/${{__data.fields.{panel.link_field}}}"
                                "?${__url_time_range}",
                            }
                        ],
                    }
                ],
            }
        )
    return overrides


def _layout(rows: Sequence[Row]) -> list[Any]:
    """Rows one under another; panels fill each row left to right, wrapping at 24. Panel
    ids count from 1 in that order, as grafanalib's ``auto_panel_ids`` would number them
    (which re-creates every panel to do it)."""
    out: list[Any] = []
    y = 0
    for row in rows:
        out.append(
            g.RowPanel(
                id=len(out) + 1, title=row.title, gridPos=g.GridPos(h=1, w=GRID_WIDTH, x=0, y=y)
            )
        )
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            pos = g.GridPos(h=PANEL_HEIGHT, w=panel.width, x=x, y=y)
            out.append(_to_grafanalib(panel, pos, len(out) + 1))
            x += panel.width
        y += PANEL_HEIGHT
    return out


def _templating(spec: DashboardSpec) -> g.Templating:
    variables = [
        g.Template(
            name=DATASOURCE_VARIABLE,
            label="Data source",
            query="prometheus",
            type="datasource",
            default=spec.datasource,
        )
    ]
    for v in spec.variables:
        variables.append(
            g.Template(
                name=v.name,
                label=v.label,
                query=v.query,
                dataSource=DATASOURCE,
                includeAll=v.all,
                multi=v.all,
                allValue=".*" if v.all else None,
                default="All" if v.all else None,
                refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
            )
        )
    return g.Templating(list=variables)


def build_dashboard_json(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a plain dict)."""
    links: list[Any] = [
        g.DashboardLink(title=link.title, type="link", uri=link.url, targetBlank=True)
        for link in spec.links
    ]
    if spec.dashboard_links_tag:
        links.insert(
            0,
            g.DashboardLink(
                title="Functions",
                type="dashboards",
                tags=[spec.dashboard_links_tag],
                asDropdown=True,
                includeVars=False,
            ),
        )
    dashboard = g.Dashboard(
        title=spec.title,
        description=spec.description,
        uid=spec.uid,
        tags=list(spec.tags),
        panels=_layout(spec.rows),
        templating=_templating(spec),
        links=links,
        time=g.Time(spec.time_from, "now"),
        refresh=spec.refresh,
        timezone="browser",
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    )
    try:
        data = _plain(dashboard)
    except _NotPlain:
        data = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    return _post_process(data)


def _plain(value: Any) -> Any:
    """grafanalib objects as the plain data a JSON round trip through its
    ``DashboardEncoder`` gives (fresh dicts and lists, tuples as lists), without encoding
    and parsing the text; anything that round trip would change otherwise (keys other
    than strings, subclasses of the JSON types) raises :class:`_NotPlain`."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            sub = type(item)
            out[key] = item if sub is str or sub is int or item is None else _plain(item)
        return out
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, (str, int, float, dict, list, tuple)):
        raise _NotPlain
    to_json_data = getattr(value, "to_json_data", None)
    if to_json_data is None:
        raise _NotPlain
    return _plain(to_json_data())


def _post_process(data: dict[str, Any]) -> dict[str, Any]:
    """The documented fixes to grafanalib's output (module docstring)."""
    data["schemaVersion"] = SCHEMA_VERSION
    data["editable"] = False
    for key in LEGACY_KEYS:
        data.pop(key, None)
    for panel in data["panels"]:
        if panel["type"] == "row":
            panel.pop("datasource", None)
            continue
        panel["datasource"] = dict(DATASOURCE)
        for key in LEGACY_PANEL_KEYS:
            panel.pop(key, None)
        for target in panel["targets"]:
            target["datasource"] = dict(DATASOURCE)
            for key in LEGACY_TARGET_KEYS:
                target.pop(key, None)
    for variable in data["templating"]["list"]:
        if variable["type"] == "datasource":
            variable.pop("datasource", None)
    cleaned: dict[str, Any] = _drop_none(data)
    return cleaned


def _drop_none(value: Any) -> Any:
    """``value`` without ``None`` entries; threshold steps keep theirs (the base step's
    ``"value": null`` means minus infinity)."""
    if isinstance(value, dict):
        return {
            k: _drop_none(v) if k != "steps" and isinstance(v, _CONTAINERS) else v
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, list):
        return [_drop_none(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value


_CONTAINERS = (dict, list)


# --- dashboard text ----------------------------------------------------------------------------

_encode_str = json.encoder.encode_basestring  # the C one when available (ensure_ascii=False)
_INDENTS = ["\n" + "  " * level for level in range(64)]


def json_text(value: Any) -> str:
    """``json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"``, byte for
    byte, several times faster: ``indent`` makes :mod:`json` use its pure-Python encoder,
    whose generators cost most of a dashboard's build. Types other than the JSON ones (and
    nesting deeper than 60) go through :func:`json.dumps` itself."""
    try:
        return _json(value, 0) + "\n"
    except _NotPlain:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _NotPlain(Exception):
    """A value :func:`_json` does not write exactly as :func:`json.dumps` would."""


def _json(value: Any, level: int) -> str:
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is dict:
        if not value:
            return "{}"
        if level > 60:
            raise _NotPlain
        inner = _INDENTS[level + 1]
        try:
            items = sorted(value.items())
        except TypeError:
            raise _NotPlain from None
        parts = []
        for key, item in items:
            head = _KEYS.get(key) if type(key) is str else None
            if head is None:
                head = _key(key)
            sub = type(item)  # the common leaves inline: a call per node is most of the cost
            if sub is str:
                parts.append(head + _encode_str(item))
            elif sub is int:
                parts.append(head + int.__repr__(item))
            else:
                parts.append(head + _json(item, level + 1))
        return "{" + inner + ("," + inner).join(parts) + _INDENTS[level] + "}"
    if kind is list:
        if not value:
            return "[]"
        if level > 60:
            raise _NotPlain
        inner = _INDENTS[level + 1]
        parts = [
            _encode_str(item) if type(item) is str else _json(item, level + 1) for item in value
        ]
        return "[" + inner + ("," + inner).join(parts) + _INDENTS[level] + "]"
    if kind is int:
        return int.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float and value == value and value not in (float("inf"), float("-inf")):
        return float.__repr__(value)
    raise _NotPlain


#: ``"key": `` by key: dashboards repeat a few hundred keys thousands of times.
_KEYS: dict[str, str] = {}


def _key(key: Any) -> str:
    if type(key) is not str:
        raise _NotPlain
    head = _encode_str(key) + ": "
    if len(_KEYS) < 4096:
        _KEYS[key] = head
    return head
