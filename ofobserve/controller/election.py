"""Leader election on a ``coordination.k8s.io/v1`` Lease (the rules are in
:mod:`~ofobserve.controller.leases`). Does I/O (two threads).

As client-go's: the leader tries to renew every ``retry_period``, and leads only until
``renew_deadline`` after the *start* of its last successful attempt (no later than the API
server could have seen it). That end does not wait for a request to come back:

* :attr:`LeaderElector.leading` turns false by itself once the deadline passes (the
  reconciler consults it before every write);
* a watchdog thread calls ``on_change(False)`` at that moment;
* every Lease request is bounded by the time left until the deadline (one total timeout
  for connect, TLS and the answer, and no retries), so a hung connection costs one attempt.

A non-leader takes the Lease once its holder has not renewed it for ``lease_duration`` as this
replica observed it; ``renew_deadline < lease_duration`` leaves the old leader time to stop
first. On shutdown the leader writes an empty holder, so another replica takes over at once.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ofobserve.controller.leases import Observer, released, taken
from ofobserve.controller.resources import LEASES
from ofobserve.kube.client import APIError, Kube

log = logging.getLogger("ofobserve.controller")

#: An attempt with less time than this left is not sent.
MIN_REQUEST_TIME = 0.05
#: Seconds the shutdown release may take at most.
RELEASE_TIMEOUT = 5.0


class Leadership:
    """Whether this replica leads now: held until a monotonic deadline, after which
    :meth:`is_set` is false without anyone clearing it. Reads take no lock."""

    def __init__(self) -> None:
        self.until = float("-inf")

    def is_set(self) -> bool:
        return time.monotonic() < self.until

    def left(self) -> float:
        """Seconds until the deadline (negative once past)."""
        return self.until - time.monotonic()

    def hold(self, until: float) -> None:
        self.until = until

    def clear(self) -> None:
        self.until = float("-inf")


class _Conflict(Exception):
    """A 409: the Lease changed between our read and our write."""


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_change: Callable[[bool], None],
        stop: threading.Event,
    ) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period, self.on_change, self.stop = retry_period, on_change, stop
        self.api = _lease_client(kube.api_client)
        self.leading = Leadership()
        self.observer = Observer()
        #: Monotonic start of the last successful attempt.
        self.last_renew = float("-inf")
        #: The holder in the last Lease this replica read or wrote.
        self.last_holder = ""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._reported = False  # what on_change was last told
        self.thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self.watchdog = threading.Thread(target=self._watch, name="lease-watchdog", daemon=True)

    def start(self) -> None:
        self.watchdog.start()
        self.thread.start()

    # --- the two threads ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            wall = datetime.now(UTC)
            # A leader's attempt must end by its deadline; a candidate's by the deadline a
            # success would give it (an answer after that would be stale anyway).
            until = self.leading.until
            deadline = until if until > started else started + self.renew_deadline
            state = "error"
            try:
                state = self._try(wall, deadline)
            except Exception as exc:  # no answer in time, or an error: a failed attempt
                log.warning("lease %s/%s: %s", self.namespace, self.name, _line(exc))
            if state == "held":
                self._held(started)
            elif state == "other":
                self._lose("another replica holds the lease")
            elif state == "conflict":  # as decided: not waited out until the deadline
                self._lose("the lease was written by another replica meanwhile (409)")
            # On an error the leadership ends by itself at its deadline (see _watch).
            self.stop.wait(self.retry_period)

    def _watch(self) -> None:
        """Ends the leadership at its deadline, whatever the election thread is doing."""
        with self._changed:
            while not self.stop.is_set():
                if self._reported and not self.leading.is_set():
                    self._report(False, "not renewed within the renew deadline")
                wait = self.leading.left() if self._reported else self.retry_period
                self._changed.wait(min(max(wait, 0.0) + 0.001, 1.0))

    def _held(self, started: float) -> None:
        """An attempt that began at ``started`` wrote this replica into the Lease."""
        with self._changed:
            until = started + self.renew_deadline
            if time.monotonic() >= until or self.stop.is_set():  # too late to lead on
                return
            self.last_renew = started
            self.leading.hold(until)
            if not self._reported:
                self._report(True, f"became leader (identity {self.identity})")
            self._changed.notify_all()

    def _lose(self, why: str) -> None:
        with self._changed:
            self.leading.clear()
            if self._reported:
                self._report(False, why)
            self._changed.notify_all()

    def _report(self, leading: bool, why: str) -> None:
        """Tell ``on_change`` (with the lock held)."""
        self._reported = leading
        if leading:
            log.info("lease %s/%s: %s", self.namespace, self.name, why)
        else:
            log.error("lease %s/%s: %s: stopped reconciling", self.namespace, self.name, why)
        self.on_change(leading)

    # --- one attempt --------------------------------------------------------------------------

    def _try(self, wall: datetime, deadline: float) -> str:
        """``held`` (acquired or renewed), ``other`` (someone else holds it) or
        ``conflict`` (it changed between our read and our write)."""
        path = LEASES.path(self.namespace, self.name)
        duration = max(1, round(self.lease_duration))
        try:
            lease: dict[str, Any] | None = self._call("GET", path, None, deadline)
        except APIError as exc:
            if exc.status != 404:
                raise
            lease = None
        if lease is None:
            spec = taken(None, self.identity, duration, wall)
            body = {
                "apiVersion": LEASES.api_version,
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec,
            }
            try:
                stored = self._call("POST", LEASES.path(self.namespace), body, deadline)
            except _Conflict:  # another replica created it first
                return "other"
            self._observe(stored.get("spec"))
            return "held"
        spec = lease.get("spec") or {}
        self._observe(spec)  # when it was seen, not when the attempt began
        if not self.observer.may_take(spec, self.identity, time.monotonic()):
            return "other"
        lease["spec"] = taken(spec, self.identity, duration, wall)
        try:
            stored = self._call("PUT", path, lease, deadline)  # resourceVersion: optimistic
        except _Conflict:
            return "conflict"
        self._observe(stored.get("spec"))
        return "held"

    def _observe(self, spec: dict[str, Any] | None) -> None:
        self.observer.observe(spec, time.monotonic())
        self.last_holder = str((spec or {}).get("holderIdentity") or "")

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, deadline: float
    ) -> dict[str, Any]:
        """One request, given up at ``deadline`` (monotonic): one total timeout covers the
        connection, TLS and the answer."""
        left = deadline - time.monotonic()
        if left < MIN_REQUEST_TIME:
            raise TimeoutError(f"{method} {path}: no time left before the renew deadline")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=left)
        data = response.read()
        if response.status == 409:
            raise _Conflict(f"{method} {path}: HTTP 409")
        if not 200 <= response.status <= 299:
            raise _api_error(int(response.status), str(response.reason or ""), data)
        result: dict[str, Any] = json.loads(data) if data else {}
        return result

    # --- shutdown -----------------------------------------------------------------------------

    def release(self) -> None:
        """Give the Lease up, if this replica holds it (on shutdown)."""
        with self._changed:
            held = self.leading.is_set() or self.last_holder == self.identity
            self.leading.clear()
            if self._reported:
                self._reported = False
                self.on_change(False)
            self._changed.notify_all()
        if not held:
            return
        path = LEASES.path(self.namespace, self.name)
        deadline = time.monotonic() + min(RELEASE_TIMEOUT, self.renew_deadline)
        try:
            lease = self._call("GET", path, None, deadline)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = released(lease["spec"], datetime.now(UTC))
                self._call("PUT", path, lease, deadline)
                log.info("released the lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("could not release the lease %s/%s: %s", self.namespace, self.name,
                        _line(exc))  # fmt: skip


def _lease_client(api_client: Any) -> Any:
    """An ``ApiClient`` of the Lease's own, like ``api_client`` but without urllib3's
    retries (three by default for GET and PUT, each with a fresh timeout) and with its own
    connections, so the Lease never waits behind the reconciler's requests."""
    import kubernetes

    client: Any = kubernetes.client
    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


def _api_error(status: int, reason: str, body: bytes | None) -> APIError:
    try:
        message = str(json.loads(body or b"{}").get("message") or "")
    except (AttributeError, TypeError, ValueError):
        message = (body or b"").decode("utf-8", "replace")[:200]
    return APIError(status, reason, message)


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__
