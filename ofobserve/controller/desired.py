"""What the cluster should hold for one Function, and what to delete. Pure, no I/O.

A Function document as the API server returns it, plus the settings, becomes the objects to
server-side apply: render's Kubernetes objects (:data:`~ofobserve.controller.resources.
MANAGED_KINDS`), each labelled ``app.kubernetes.io/managed-by: ofobserve`` with the
function's identity labels, and owned by the Function when in its namespace. The fleet
dashboards carry the fleet label instead. :func:`prune_plan` says what to delete.

The Function edits are two patches of the Function itself, each under its own field
manager and never forced: the identity label (:func:`function_label_patch`) and the
scaling wiring (:func:`function_scaling_patch`). Both are rendered from :func:`authored`,
the Function without the fields only the controller's scaling manager owns, so that
rendering a Function the controller has wired gives the same patch again.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ofobserve import conventions as c
from ofobserve.builders.patches import build_function_patch
from ofobserve.builders.rule_tests import build_rule_tests
from ofobserve.builders.scaling import build_scaling
from ofobserve.controller.resources import ObjectKey, key_of, managed_kind
from ofobserve.errors import InvalidInput, Location
from ofobserve.manifests import build_function
from ofobserve.render import GROUPS, ArtifactKind, render_fleet
from ofobserve.settings import Config, fleet_settings, resolve
from ofobserve.subject import Subject, check_subject

#: The groups whose Kubernetes objects the controller applies. ``patches``, ``scaling``'s
#: Function patch and ``telemetry``'s are edits of the Function itself: the identity label
#: and the scaling wiring are applied on their own (:func:`function_label_patch`,
#: :func:`function_scaling_patch`), the ``OTEL_*`` environment is not (docs/controller.md).
FUNCTION_GROUPS = ("monitors", "scaling", "rules", "dashboards")
FLEET_GROUPS = ("rules", "dashboards")
#: render's per-function kinds in those groups that can be objects: not the files (dashboard
#: JSON, promtool tests, which would be half of render's time here).
OBJECT_KINDS: tuple[ArtifactKind, ...] = tuple(
    kind
    for group in GROUPS
    if group.name in FUNCTION_GROUPS
    for kind in group.kinds
    if kind.format == "yaml" and kind.build is not build_rule_tests
)

FunctionKey = tuple[str, str]


@dataclass(frozen=True, order=True)
class Owner:
    """Whose a managed object is: a function (``namespace``, ``name``) or the fleet."""

    namespace: str = ""
    name: str = ""

    @property
    def fleet(self) -> bool:
        return not self.name

    def __str__(self) -> str:
        return "fleet" if self.fleet else f"{self.namespace}/{self.name}"


def fleet_owner(fleet_namespace: str) -> Owner:
    """The fleet of the controller whose ``--fleet-namespace`` this is. Its objects carry
    that namespace as the fleet label's value, so that a controller only ever prunes its
    own fleet dashboards, never another release's (or a local run's)."""
    return Owner(fleet_namespace, "")


def function_key(doc: Mapping[str, Any]) -> FunctionKey:
    meta = doc.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def where(doc: Mapping[str, Any]) -> Location:
    """How problems with this Function are located: ``<namespace>/<name>``."""
    namespace, name = function_key(doc)
    return Location(f"{namespace}/{name}")


def subject_for(doc: dict[str, Any], config: Config) -> Subject:
    """The Function as render sees it, with its settings. Raises :class:`InvalidInput` with
    every problem (a bad annotation, a setting render refuses)."""
    function = build_function(doc, where(doc))
    subject = Subject(function, resolve(config, function))
    problems = check_subject(subject)
    if problems:
        raise InvalidInput(problems)
    return subject


def failure_message(error: InvalidInput) -> str:
    """An Event's message: render's lines (``<location>: <message>``), joined by ``; ``."""
    return "; ".join(str(p) for p in error.problems)


def identity_labels(owner: Owner) -> dict[str, str]:
    if owner.fleet:
        return {c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE, c.FLEET_LABEL: owner.namespace}
    return {
        c.MANAGED_BY_LABEL: c.MANAGED_BY_VALUE,
        c.FUNCTION_POD_LABEL: owner.name,
        c.FUNCTION_NAMESPACE_LABEL: owner.namespace,
    }


def owner_of(labels: Mapping[str, str] | None) -> Owner | None:
    """The owner a managed object's labels name; ``None`` for anything the controller did
    not make (render's own output carries ``managed-by`` but no identity labels)."""
    labels = labels or {}
    if labels.get(c.MANAGED_BY_LABEL) != c.MANAGED_BY_VALUE:
        return None
    if labels.get(c.FLEET_LABEL):
        return fleet_owner(labels[c.FLEET_LABEL])
    namespace, name = labels.get(c.FUNCTION_NAMESPACE_LABEL), labels.get(c.FUNCTION_POD_LABEL)
    if namespace and name:
        return Owner(namespace, name)
    return None


def owner_reference(doc: Mapping[str, Any]) -> dict[str, Any]:
    meta = doc["metadata"]
    return {
        "apiVersion": doc["apiVersion"],
        "kind": "Function",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def _labelled(content: dict[str, Any], owner: Owner) -> dict[str, Any]:
    obj = copy.deepcopy(content)
    meta = obj.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **identity_labels(owner)}
    return obj


def _kubernetes_objects(contents: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        content
        for content in contents
        if isinstance(content, dict)
        and managed_kind(str(content.get("apiVersion")), str(content.get("kind"))) is not None
    ]


def desired_objects(subject: Subject, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The function's objects to apply, sorted by key. Those in the Function's namespace
    are owned by it (``controller: true``); others (dashboards in Grafana's namespace)
    carry the labels only."""
    f = subject.function
    owner = Owner(f.namespace, f.name)
    contents = [kind.build(subject) for kind in OBJECT_KINDS]
    objects = []
    for content in _kubernetes_objects(contents):
        obj = _labelled(content, owner)
        if obj["metadata"].get("namespace", f.namespace) == f.namespace:
            obj["metadata"]["namespace"] = f.namespace
            if (doc.get("metadata") or {}).get("uid"):
                obj["metadata"]["ownerReferences"] = [owner_reference(doc)]
        objects.append(obj)
    return sorted(objects, key=key_of)


def fleet_objects(
    subjects: Sequence[Subject], config: Config, namespace: str
) -> list[dict[str, Any]]:
    """The fleet dashboards (overview, scaler) as objects; ``namespace`` where the settings
    name none (``grafana.namespace``). None at all while there is no function."""
    if not subjects:
        return []
    artifacts = render_fleet(subjects, fleet_settings(config), FLEET_GROUPS)
    objects = []
    for content in _kubernetes_objects(a.content for a in artifacts if a.format == "yaml"):
        obj = _labelled(content, fleet_owner(namespace))
        obj["metadata"].setdefault("namespace", namespace)
        objects.append(obj)
    return sorted(objects, key=key_of)


def function_label_patch(subject: Subject) -> dict[str, Any] | None:
    """The server-side apply of the identity label in ``spec.serving.labels`` (render's
    ``patches`` group), or ``None`` when the Function carries it already."""
    f = subject.function
    if dict(f.serving_labels).get(c.FUNCTION_POD_LABEL) == f.name:
        return None
    return build_function_patch(subject)


def function_scaling_patch(subject: Subject) -> dict[str, Any] | None:
    """The server-side apply of render's ``scaling`` Function patch
    (``spec.serving.scaleOptions``: the KEDA ``external-push`` trigger to the ofobserve
    scaler beside the author's own triggers, the HPA behavior, the fallback, the bounds),
    or ``None`` where render gives none (a Knative or ``keda-http`` function, a v1beta1
    Function, ``scaling.delivery: scaled-object``: :func:`~ofobserve.builders.scaling.
    why_not_wired`). Render it from the :func:`authored` Function."""
    patch = build_scaling(subject)
    if patch is None or patch.get("kind") != "Function":
        return None
    return patch


FieldPath = tuple[str, ...]
#: Where the scaling patch writes, and its one list (atomic in OpenFunction's CRD: no
#: ``x-kubernetes-list-type``, so one manager owns the whole list).
SCALE_OPTIONS: FieldPath = ("spec", "serving", "scaleOptions")
TRIGGERS: FieldPath = (*SCALE_OPTIONS, "keda", "triggers")


def _leaves(fields: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    """The fields a ``managedFields`` entry's ``fieldsV1`` owns, as paths. A list (its items
    are ``k:``/``v:``/``i:`` keys, or none when atomic) counts as one field."""
    found: set[FieldPath] = set()
    if not isinstance(fields, Mapping):
        return found
    for key, sub in fields.items():
        if not str(key).startswith("f:"):
            continue
        path = (*prefix, str(key)[2:])
        deeper = isinstance(sub, Mapping) and any(str(k).startswith("f:") for k in sub)
        found |= _leaves(sub, path) if deeper else {path}
    return found


def _owned(doc: Mapping[str, Any], manager: str, mine: bool = True) -> set[FieldPath]:
    """The fields ``manager`` owns (``mine``), or every other manager does."""
    entries = (doc.get("metadata") or {}).get("managedFields") or []
    found: set[FieldPath] = set()
    for entry in entries:
        if isinstance(entry, Mapping) and (entry.get("manager") == manager) == mine:
            found |= _leaves(entry.get("fieldsV1"))
    return found


def _overlap(a: FieldPath, b: FieldPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _patch_leaves(value: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    """The fields a server-side apply of ``value`` owns: every scalar and list."""
    if not isinstance(value, Mapping) or not value:
        return {prefix}
    return {leaf for k, v in value.items() for leaf in _patch_leaves(v, (*prefix, str(k)))}


def _remove(obj: dict[str, Any], path: FieldPath) -> None:
    """Delete ``path`` and the mappings the deletion leaves empty."""
    parents: list[tuple[dict[str, Any], str]] = []
    node = obj
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return
        parents.append((node, key))
        node = child
    node.pop(path[-1], None)
    for parent, key in reversed(parents):
        if parent[key]:
            break
        del parent[key]


def authored(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The Function as its author wrote it: without the fields under
    ``spec.serving.scaleOptions`` that the controller's scaling manager owns and no other
    manager does (the HPA behavior, the fallback, the bounds it set). Render reads those as
    the author's own (``own_fallback``...), so without this a wired Function would render a
    smaller patch, whose apply would delete them, and so on. The ``triggers`` list stays:
    render keeps every trigger but ofobserve's own."""
    ours = _owned(doc, c.CONTROLLER_SCALING_FIELD_MANAGER)
    if not ours:
        return dict(doc)
    others = _owned(doc, c.CONTROLLER_SCALING_FIELD_MANAGER, mine=False)
    result = copy.deepcopy(dict(doc))
    for path in sorted(ours):
        if path[: len(SCALE_OPTIONS)] != SCALE_OPTIONS or path == TRIGGERS:
            continue
        if not any(_overlap(path, other) for other in others):
            _remove(result, path)
    return result


def _holds(have: Any, want: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have and _holds(have[k], v) for k, v in want.items()
        )
    return bool(have == want)


def scaling_is_applied(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """The Function holds ``patch`` already and the scaling manager owns exactly its
    fields: applying it again would change nothing, so it is not sent."""
    spec = patch.get("spec") or {}
    return _holds(doc.get("spec"), spec) and _owned(
        doc, c.CONTROLLER_SCALING_FIELD_MANAGER
    ) == _patch_leaves(spec, ("spec",))


_CONFLICT_WITH = re.compile(r'conflict with "([^"]+)"')


def scaling_conflict_message(causes: Sequence[Mapping[str, str]], message: str) -> str:
    """A ``ScalingNotWired`` Event's message, from a 409's ``details.causes`` (``message``,
    the Status's own, when there are none)."""
    fields: dict[str, list[str]] = {}
    for cause in causes:
        found = _CONFLICT_WITH.search(cause.get("message", ""))
        manager = found.group(1) if found else cause.get("message", "")
        fields.setdefault(manager, []).append(cause.get("field", "").lstrip("."))
    owned = "; ".join(f'with "{m}" on {", ".join(sorted(f))}' for m, f in sorted(fields.items()))
    return (
        f"not wired to the ofobserve scaler: server-side apply conflicts "
        f"{owned or message}, and ofobserve does not force it. Add ofobserve's trigger to "
        "this Function's manifest as `ofobserve render --only scaling` prints it, or let "
        "that manager give up these fields."
    )


def _scale_options_owners(entries: Iterable[Any]) -> list[tuple[str, list[str]]]:
    """Who owns which fields under ``spec.serving.scaleOptions``."""
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        leaves = _leaves(entry.get("fieldsV1"))
        under = sorted(".".join(p) for p in leaves if p[: len(SCALE_OPTIONS)] == SCALE_OPTIONS)
        if under:
            found.append((str(entry.get("manager")), under))
    return sorted(found)


def rendered_inputs(doc: Mapping[str, Any]) -> str:
    """What render reads of a Function, as one string: two versions of a Function with the
    same string (a status update, the resourceVersion) render the same. Who owns
    ``spec.serving.scaleOptions`` is part of it (:func:`authored`): a manager that gives up
    those fields re-tries a scaling patch that conflicted."""
    meta = doc.get("metadata") or {}
    kept = {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "annotations")}
    kept["deleting"] = bool(meta.get("deletionTimestamp"))
    kept["scaleOptions"] = _scale_options_owners(meta.get("managedFields") or [])
    return json.dumps([doc.get("apiVersion"), kept, doc.get("spec")], sort_keys=True)


def with_label(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as it is once the identity-label ``patch`` is applied."""
    merged = copy.deepcopy(dict(doc))
    serving = merged.setdefault("spec", {}).setdefault("serving", {})
    serving["labels"] = {**(serving.get("labels") or {}), **patch["spec"]["serving"]["labels"]}
    return merged


def prune_plan(existing: Iterable[ObjectKey], desired: Iterable[ObjectKey]) -> list[ObjectKey]:
    """What an owner has and no longer gets, sorted."""
    return sorted(set(existing) - set(desired))
