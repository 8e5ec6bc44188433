"""Where the direct source finds a function's metrics: a ``--targets`` file, or the pods one
watch of the Kubernetes API keeps in memory. Does I/O (the file; one informer thread per
watched namespace, off the serving loop).

Both answer :meth:`Discovery.targets` from memory, and neither answers with what it did not
read: before the first pod list has completed, or once the watch has been failing longer
than ``max_outage``, :class:`WatchDiscovery` raises :class:`DiscoveryError` (the engine then
keeps the function's last good decision, within ``--max-staleness``), never "no pods".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ofobserve import conventions as c
from ofobserve.kube.client import Kube
from ofobserve.kube.informer import WATCH_TIMEOUT_SECONDS, Informer, RestartHook
from ofobserve.scaler.config import FunctionKey, ScalerConfig

__all__ = [
    "MAX_OUTAGE_SECONDS",
    "TARGETS_SHAPE",
    "Discovery",
    "DiscoveryError",
    "StaticDiscovery",
    "Targets",
    "TargetsFileError",
    "WatchDiscovery",
    "parse_targets",
    "read_targets_file",
]

log = logging.getLogger("ofobserve.scaler")

PROXY = c.OPENFUNCTION_PROXY_LABEL
#: Seconds the pod store is still answered from while its watch fails (reconnecting with
#: backoff): 3 x the 10 s the list-per-function discovery kept each list. Beyond, targets
#: raise rather than serve pods that may be long gone (docs/decisions.md).
MAX_OUTAGE_SECONDS = 30.0


@dataclass(frozen=True)
class Targets:
    """Where one function's metrics are: the ``host:port`` endpoints serving ``/metrics``
    (its pods for the native profile, daprd for ``dapr``), and its ready replicas (``None``:
    unknown; the native profile then counts the pods that answer)."""

    endpoints: tuple[str, ...] = ()
    ready: int | None = None


class DiscoveryError(RuntimeError):
    """One function's targets cannot be told; the message says why."""


class Discovery(Protocol):
    """Where a function's metrics are, for its profile. An exception fails that function's
    read only."""

    def targets(self, config: ScalerConfig) -> Targets: ...

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """Drop what is cached for ``keys``: the engine forgot them."""


# --- the --targets file --------------------------------------------------------------------------

TARGETS_SHAPE = (
    "expected a mapping of '<namespace>/<function>' to lists of host:port, or to "
    "{metrics: [host:port, ...], ready: N}"
)


def parse_targets(table: object) -> dict[str, Targets]:
    """A ``--targets`` file's content; ``ValueError`` naming the first bad key.

    A list is where the function's metrics are (its pods, or daprd), with the ready
    replicas unknown; a mapping gives them: ``metrics`` (required) and ``ready``.
    """
    if not isinstance(table, Mapping):
        raise ValueError(TARGETS_SHAPE)
    found: dict[str, Targets] = {}
    for key, value in table.items():
        namespace, _, name = str(key).partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"{key!r}: expected '<namespace>/<function>'")
        if isinstance(value, Mapping):
            unknown = sorted(set(map(str, value)) - {"metrics", "ready"})
            if unknown:
                raise ValueError(f"{key}: unknown key {unknown[0]!r}; expected 'metrics', 'ready'")
            metrics, ready = value.get("metrics"), value.get("ready")
            if not isinstance(metrics, list) or not _addresses(metrics):
                raise ValueError(f"{key}.metrics: expected a list of host:port (got {metrics!r})")
            if ready is not None and (
                not isinstance(ready, int) or isinstance(ready, bool) or ready < 0
            ):
                raise ValueError(f"{key}.ready: must be a whole number >= 0 (got {ready!r})")
            found[key] = Targets(tuple(metrics), ready)
        elif _addresses(value):
            found[key] = Targets(tuple(value))
        else:
            raise ValueError(f"{key}: {TARGETS_SHAPE} (got {value!r})")
    return found


def _addresses(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(t, str) for t in value)


class TargetsFileError(ValueError):
    """A ``--targets`` file that cannot be read, or holds no valid table; the message names
    the file and, for a bad entry, its key."""


#: What tells one version of a file from another: (device, inode, size, mtime in ns). A
#: write-then-rename gives a new inode, an in-place rewrite a new mtime (or size), a
#: Kubernetes ConfigMap volume's symlink swap a new inode behind the same path.
_Version = tuple[int, int, int, int]
#: The version of a file that is not there.
_MISSING: _Version = (-1, -1, -1, -1)


def _version(path: Path) -> _Version:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_targets_file(path: Path) -> dict[str, Targets]:
    """The table in ``path`` (:func:`parse_targets`); :class:`TargetsFileError` otherwise."""
    try:
        table = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TargetsFileError(f"cannot read targets file {path}: {exc}") from None
    try:
        return parse_targets(table)
    except ValueError as exc:
        raise TargetsFileError(f"{path}: {exc}") from None


def _ignore(reason: str) -> None:
    """No metric to count a failed reload in."""


class StaticDiscovery:
    """Targets from a table (:func:`parse_targets`); a function it does not name has none
    (no pods: no traffic).

    Made :meth:`from_file`, it reads the file again when it changes (its inode, size or
    mtime: :data:`_Version`), checking at most once every ``check_every`` seconds (the
    scaler passes its refresh interval), from the first lookup after that. A rewrite that
    cannot be read or parsed keeps the last good table: it is logged once (the message
    names the file and the bad key) and reported to ``on_error`` (a metric); a later good
    rewrite is picked up again. Write the file and rename it into place, so that no read
    sees half of it (a half-written file is refused as above, then read once complete).
    """

    def __init__(self, table: object) -> None:
        self.table = parse_targets(table)
        self.path: Path | None = None
        self.check_every = 0.0
        self.on_error: Callable[[str], None] = _ignore
        self.clock: Callable[[], float] = time.monotonic
        self.seen_version: _Version | None = None  # last looked at, good or bad
        self.checked = 0.0
        self.lock = threading.Lock()

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        check_every: float = 1.0,
        on_error: Callable[[str], None] = _ignore,
        clock: Callable[[], float] = time.monotonic,
    ) -> StaticDiscovery:
        """The table in ``path``, followed as it changes; :class:`TargetsFileError` when it
        cannot be read now (the scaler exits 1)."""
        try:
            version = _version(path)
        except OSError as exc:
            raise TargetsFileError(f"cannot read targets file {path}: {exc}") from None
        discovery = cls({})
        discovery.table = read_targets_file(path)
        discovery.path, discovery.check_every = path, check_every
        discovery.on_error, discovery.clock = on_error, clock
        discovery.seen_version = version
        discovery.checked = clock()
        return discovery

    def targets(self, config: ScalerConfig) -> Targets:
        if self.path is not None:
            self._reload_if_changed(self.path)
        return self.table.get(f"{config.namespace}/{config.function}", Targets())

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """The table is the file's: nothing to drop."""

    def _reload_if_changed(self, path: Path) -> None:
        with self.lock:
            now = self.clock()
            if now - self.checked < self.check_every:
                return
            self.checked = now
            try:
                version = _version(path)  # before the read: a change after it is seen next
            except OSError as exc:
                self._refused(_MISSING, f"cannot read targets file {path}: {exc}")
                return
            if version == self.seen_version:
                return
            try:
                table = read_targets_file(path)
            except TargetsFileError as exc:
                self._refused(version, str(exc))
                return
            self.table, self.seen_version = table, version
            log.info("targets file %s read again: %d function(s)", path, len(table))

    def _refused(self, version: _Version, message: str) -> None:
        if version == self.seen_version:
            return  # this bad version was reported already
        self.seen_version = version
        log.error("%s; keeping the table read before (%d function(s))", message, len(self.table))
        self.on_error("targets-file")


# --- the Kubernetes API: one watch of the function pods ------------------------------------------


@dataclass(frozen=True)
class _Pod:
    """What is kept of one pod: its IP, whether it is ready, whether it is a dapr-proxy."""

    ip: str
    ready: bool
    proxy: bool


def _slim(pod: dict[str, Any]) -> dict[str, Any]:
    """The fields of a pod that discovery reads (the informer stores this, not the pod)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": {k: v for k, v in labels.items() if k in (c.FUNCTION_POD_LABEL, PROXY)},
        },
        "status": {
            "podIP": status.get("podIP"),
            "conditions": [
                cond for cond in status.get("conditions") or [] if cond.get("type") == "Ready"
            ],
        },
    }


def _pod(obj: dict[str, Any]) -> _Pod:
    status = obj.get("status") or {}
    ip = str(status.get("podIP") or "")
    ready = bool(ip) and any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    )
    return _Pod(ip, ready, PROXY in ((obj.get("metadata") or {}).get("labels") or {}))


def _pods_path(namespace: str | None) -> str:
    return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"


def _no_restart_hook(resource: str, reason: str) -> None:
    """No metric to count watch restarts in."""


class WatchDiscovery:
    """The pods labelled ``ofobserve.io/function``, kept by one list+watch per namespace in
    scope (``namespaces``; none: one watch of all namespaces), each in a thread of its own.

    A function's pods are those whose label value is its name. The dapr-proxy pods carry
    that label too (OpenFunction copies ``spec.serving.labels`` onto them) and are told
    apart by ``openfunction.io/proxy``: the function's own pods are the others, and they
    alone are its ready replicas (a pod is ready with a pod IP and ``Ready=True``). The
    native profile reads those pods; ``dapr`` reads daprd on the proxy pods (OpenFunction's
    default mode) or, without any (sidecar mode), on the function's pods.

    :meth:`targets` raises :class:`DiscoveryError` before the first list of the function's
    namespace has completed, and once its watch has been failing for more than
    ``max_outage`` seconds; in between it answers from the store, however long ago the last
    change came (a quiet, healthy watch).
    """

    def __init__(
        self,
        kube: Kube,
        namespaces: Sequence[str] = (),
        *,
        port: int = c.NATIVE_METRICS_PORT,
        dapr_port: int = c.DAPR_METRICS_PORT,
        max_outage: float = MAX_OUTAGE_SECONDS,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        on_restart: RestartHook = _no_restart_hook,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port, self.dapr_port, self.max_outage = port, dapr_port, max_outage
        self.stop = threading.Event()
        self.lock = threading.Lock()
        #: (namespace, function) -> pod name -> what is kept of the pod
        self.pods: dict[FunctionKey, dict[str, _Pod]] = {}
        #: (namespace, pod name) -> the function it was filed under
        self.filed: dict[tuple[str, str], FunctionKey] = {}
        self.informers: dict[str, Informer] = {}
        scopes: list[str | None] = [*sorted(set(namespaces))] or [None]
        for namespace in scopes:
            self.informers[namespace or ""] = Informer(
                kube,
                f"pods/{namespace}" if namespace else "pods",
                _pods_path(namespace),
                self._on_event,
                on_restart,
                self.stop,
                watch_timeout=watch_timeout,
                label_selector=c.FUNCTION_POD_LABEL,
                transform=_slim,
                clock=clock,
            )

    def start(self) -> WatchDiscovery:
        for informer in self.informers.values():
            informer.start()
        return self

    def close(self) -> None:
        """Stop the watches and end their open streams."""
        for informer in self.informers.values():
            informer.close()

    def wait_synced(self, timeout: float) -> bool:
        """Whether every watch has listed once within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        return all(
            informer.synced.wait(max(deadline - time.monotonic(), 0.0))
            for informer in self.informers.values()
        )

    def healthy(self) -> bool:
        """Every watch has listed, and none fails for longer than ``max_outage``."""
        return all(self._problem(informer) is None for informer in self.informers.values())

    def targets(self, config: ScalerConfig) -> Targets:
        namespace, _ = config.key
        informer = self.informers.get(namespace) or self.informers.get("")
        if informer is None:
            raise DiscoveryError(f"namespace {namespace} is not watched (--watch-namespace)")
        problem = self._problem(informer)
        if problem is not None:
            raise DiscoveryError(problem)
        with self.lock:
            found = self.pods.get(config.key, {})
            pods = [found[name] for name in sorted(found)]
        own = [pod.ip for pod in pods if not pod.proxy and pod.ready]
        if config.profile != c.PROFILE_DAPR:
            return Targets(tuple(f"{ip}:{self.port}" for ip in own), len(own))
        proxies = [pod for pod in pods if pod.proxy]
        if not proxies:  # sidecar mode: daprd runs in every function pod
            return Targets(tuple(f"{ip}:{self.dapr_port}" for ip in own), len(own))
        daprd = [pod.ip for pod in proxies if pod.ready]
        if not daprd:
            raise DiscoveryError(f"none of its {len(proxies)} dapr-proxy pod(s) is ready")
        return Targets(tuple(f"{ip}:{self.dapr_port}" for ip in daprd), len(own))

    def forget(self, keys: Sequence[FunctionKey]) -> None:
        """Nothing is kept per function: the store holds the watched pods, whoever asks."""

    def _problem(self, informer: Informer) -> str | None:
        if not informer.synced.is_set():
            why = f" (last error: {informer.last_error})" if informer.last_error else ""
            return f"pod list not synced yet{why}"
        outage = informer.outage()
        if outage is not None and outage > self.max_outage:
            return (
                f"the pod watch has been failing for {outage:.0f} s ({informer.last_error}); "
                f"its last pod list is not used past {self.max_outage:g} s"
            )
        return None

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        function = str((meta.get("labels") or {}).get(c.FUNCTION_POD_LABEL) or "")
        with self.lock:
            before = self.filed.pop((namespace, name), None)
            if before is not None:
                pods = self.pods.get(before, {})
                pods.pop(name, None)
                if not pods:
                    self.pods.pop(before, None)
            if kind != "DELETED" and function:
                key = (namespace, function)
                self.pods.setdefault(key, {})[name] = _pod(obj)
                self.filed[(namespace, name)] = key
