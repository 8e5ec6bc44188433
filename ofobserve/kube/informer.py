"""List, then watch, one collection; keep a store of its objects and report each change.
Does I/O (one thread per informer).

It resumes a watch from the last resourceVersion it saw (bookmarks included), relists on
``410 Gone`` (the version is too old), and reconnects after a dropped connection with a
capped backoff. A relist reports the objects that went away meanwhile as deleted.

Health: :attr:`Informer.synced` is set once the first list has completed (before it, the
store is unknown, not empty); :meth:`Informer.outage` tells for how long the list and watch
have been failing (``None`` while the watch is open, or was accepted since the last
failure), and :attr:`Informer.last_error` why.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ofobserve.kube.client import APIError, Kube

log = logging.getLogger("ofobserve.kube")

Key = tuple[str, str]
#: ``(event type, object)``: ``ADDED``, ``MODIFIED`` or ``DELETED``.
Handler = Callable[[str, dict[str, Any]], None]
#: The watch's reason for a restart, for the metric: ``expired`` (the server's timeout),
#: ``gone`` (410: relist) or ``error`` (dropped, refused).
RestartHook = Callable[[str, str], None]
#: What is kept of each object (a smaller copy: the store holds only what is read).
Transform = Callable[[dict[str, Any]], dict[str, Any]]
WATCH_TIMEOUT_SECONDS = 300
RETRY_MIN, RETRY_MAX = 0.2, 10.0


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


def object_key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _keep(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


def _nothing() -> None:
    """No watch is open."""


class Informer:
    def __init__(
        self,
        kube: Kube,
        name: str,
        path: str,
        handler: Handler,
        on_restart: RestartHook,
        stop: threading.Event,
        field_selector: str | None = None,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        label_selector: str | None = None,
        transform: Transform = _keep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.name, self.path = kube, name, path
        self.handler, self.on_restart, self.stop = handler, on_restart, stop
        self.query: dict[str, str] = {}
        if field_selector:
            self.query["fieldSelector"] = field_selector
        if label_selector:
            self.query["labelSelector"] = label_selector
        self.watch_timeout = watch_timeout
        self.transform, self.clock = transform, clock
        self.store: dict[Key, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.resource_version = ""
        #: When the list or watch started failing (``clock()``), ``None`` while healthy.
        self.failing_since: float | None = None
        self.last_error = ""
        self._end_stream: Callable[[], None] = _nothing
        self.thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def items(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.store.values())

    def get(self, key: Key) -> dict[str, Any] | None:
        with self.lock:
            return self.store.get(key)

    def outage(self) -> float | None:
        """Seconds since the list or watch started failing; ``None`` while it is healthy."""
        since = self.failing_since
        return None if since is None else max(self.clock() - since, 0.0)

    def close(self) -> None:
        """Stop: set ``stop`` and end the open watch, so that the thread ends now rather than
        at the next event or the server's timeout."""
        self.stop.set()
        # already closed, or closing: the thread ends either way
        with contextlib.suppress(Exception):
            self._end_stream()

    def _healthy(self) -> None:
        self.failing_since = None

    def _opened(self, end_stream: Callable[[], None]) -> None:
        self._end_stream = end_stream
        self._healthy()
        if self.stop.is_set():  # closed while the watch was being opened
            end_stream()

    def _failed(self, exc: BaseException) -> None:
        self.last_error = _short(exc)
        if self.failing_since is None:
            self.failing_since = self.clock()

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self.stop.is_set():
            try:
                if not self.resource_version:
                    self._relist()
                self._watch()
                delay = RETRY_MIN
                self.on_restart(self.name, "expired")
            except Gone:
                log.info("watch of %s: resourceVersion %s is gone, relisting", self.name,
                         self.resource_version)  # fmt: skip
                self.resource_version = ""
                self.on_restart(self.name, "gone")
            except Exception as exc:  # dropped connection, refused, API error: retry
                if self.stop.is_set():
                    return
                self._failed(exc)
                log.warning("watch of %s failed (%s); retrying in %.1f s", self.name,
                            _short(exc), delay)  # fmt: skip
                self.on_restart(self.name, "error")
                self.stop.wait(delay)
                delay = min(RETRY_MAX, delay * 2)

    def _relist(self) -> None:
        items, version = self.kube.list_all(self.path, **self.query)
        fresh = {object_key(o): self.transform(o) for o in items}
        with self.lock:
            old, self.store = self.store, fresh
        for key, obj in fresh.items():
            previous = old.get(key)
            if previous is None:
                self.handler("ADDED", obj)
            elif _version(previous) != _version(obj):
                self.handler("MODIFIED", obj)
        for key, obj in old.items():
            if key not in fresh:
                self.handler("DELETED", obj)
        self.resource_version = version
        self._healthy()
        if not self.synced.is_set():
            log.info("listed %d %s", len(fresh), self.name)
        self.synced.set()

    def _watch(self) -> None:
        stream = self.kube.watch(
            self.path, self.resource_version, self.watch_timeout, self._opened, **self.query
        )
        try:
            for event in stream:
                if self.stop.is_set():
                    return
                self._event(event)
        except APIError as exc:
            if exc.status == 410:
                raise Gone() from None
            raise

    def _event(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            code, reason = int(obj.get("code") or 0), str(obj.get("reason") or "")
            raise APIError(code, reason, str(obj.get("message") or ""))
        version = _version(obj)
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        obj = self.transform(obj)
        key = object_key(obj)
        with self.lock:
            if kind == "DELETED":
                self.store.pop(key, None)
            else:
                self.store[key] = obj
        self.resource_version = version or self.resource_version
        self.handler(str(kind), obj)


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")
