"""Leader election: a leader whose connection to the API server hangs stops leading at its
renew deadline (not when a request gives up), before another replica takes the Lease;
``leaseTransitions`` counts every change of holder, as client-go's.

The controllers run as real processes against the real kube-apiserver 1.20, one of them
through a TCP proxy that stalls (tests/support/stall_proxy.py); each is read through its own
``/metrics``, directly, never through the proxy.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ofobserve.controller.election import LeaderElector
from ofobserve.controller.leases import micro_time, released, taken
from ofobserve.controller.resources import LEASES
from ofobserve.kube.client import Kube, load_api_client
from tests.support.controller import ControllerProcess, eventually
from tests.support.kube import KubeAPI
from tests.support.stall_proxy import StallProxy

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 2.5, 0.5
LEASE_NAME = "ofobserve-controller"
LEADER = "ofobserve_controller_leader"


# --- pure: the lease rules ------------------------------------------------------------------


def test_lease_transitions_count_every_change_of_holder_even_from_a_released_lease() -> None:
    t0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    t1, t2, t3 = (t0 + timedelta(seconds=s) for s in (1, 2, 3))
    created = taken(None, "a", 4, t0)  # no Lease yet
    assert (created["holderIdentity"], created["leaseTransitions"]) == ("a", 0)
    assert created["acquireTime"] == created["renewTime"] == micro_time(t0)
    renewed = taken(created, "a", 4, t1)  # a renewal: no transition, the acquire time kept
    assert renewed["leaseTransitions"] == 0
    assert (renewed["acquireTime"], renewed["renewTime"]) == (micro_time(t0), micro_time(t1))
    stolen = taken(renewed, "b", 4, t2)  # from another holder
    assert stolen["leaseTransitions"] == 1
    assert stolen["acquireTime"] == stolen["renewTime"] == micro_time(t2)
    freed = released(stolen, t2)
    assert (freed["holderIdentity"], freed["leaseTransitions"]) == ("", 1)
    # From the empty holder a release leaves: a transition, whoever takes it (client-go
    # counts one whenever the holder it observed is not itself).
    assert taken(freed, "c", 4, t3)["leaseTransitions"] == 2
    again = taken(freed, "b", 4, t3)
    assert (again["leaseTransitions"], again["acquireTime"]) == (2, micro_time(t3))
    # A Lease that exists with no holder at all (an empty spec) counts the same.
    assert taken({}, "a", 4, t3)["leaseTransitions"] == 1
    assert taken({"holderIdentity": None, "leaseTransitions": 5}, "a", 4, t3)[
        "leaseTransitions"
    ] == 6  # fmt: skip


def test_the_watchdog_ends_leadership_at_the_deadline_while_a_request_never_returns() -> None:
    """No API server: the first attempt "succeeds", the next one hangs forever (longer than
    any request timeout could bound it). The deadline alone ends the leadership."""
    changes: list[tuple[bool, float]] = []
    stop, hang = threading.Event(), threading.Event()
    elector = LeaderElector(
        Kube(load_unreachable_client()), "ns", "lease", "me", 2.0, 0.6, 0.1,
        on_change=lambda leading: changes.append((leading, time.monotonic())), stop=stop,
    )  # fmt: skip
    attempts: list[float] = []

    def attempt(wall: datetime, deadline: float) -> str:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return "held"
        hang.wait()  # a request that never comes back
        return "held"

    elector._try = attempt  # type: ignore[method-assign]
    try:
        elector.start()
        eventually(lambda: len(changes) == 2, 5, "leading, then not")
        assert [leading for leading, _ in changes] == [True, False]
        assert not elector.leading.is_set()
        ended = changes[1][1] - elector.last_renew
        print(f"\nled until {ended:.3f} s after the start of its last successful attempt "
              f"(renew deadline {elector.renew_deadline:g} s)")  # fmt: skip
        assert ended >= elector.renew_deadline  # never before the deadline
    finally:
        stop.set()
        hang.set()


def load_unreachable_client() -> Any:
    """An ``ApiClient`` for a port nothing listens on (never used: ``_try`` is replaced)."""
    import kubernetes

    client: Any = kubernetes.client
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:9"
    return client.ApiClient(configuration)


# --- against the real API server ------------------------------------------------------------


def leader(process: ControllerProcess) -> float | None:
    """The process's leader gauge, ``None`` when /metrics did not answer."""
    samples = process.metrics()
    return samples.get((LEADER, ())) if samples else None


def proxied_kubeconfig(kubeconfig: Path, proxy: StallProxy, out: Path) -> Path:
    doc = yaml.safe_load(kubeconfig.read_text())
    for cluster in doc["clusters"]:
        server = urlsplit(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{proxy.port}"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_a_stalled_leader_stops_at_its_renew_deadline_and_the_other_takes_over(
    kube_apiserver: KubeAPI, tmp_path: Path
) -> None:
    ns = kube_apiserver.fresh_namespace("ctl-stall")
    kube = Kube(load_api_client(str(kube_apiserver.kubeconfig)))
    doc = yaml.safe_load(kube_apiserver.kubeconfig.read_text())
    server = urlsplit(doc["clusters"][0]["cluster"]["server"])
    assert server.port is not None
    proxy = StallProxy("127.0.0.1", server.port).start()
    flags = (
        f"--namespace={ns}", "--leader-elect", f"--lease-namespace={ns}",
        f"--lease-duration={LEASE_DURATION}", f"--renew-deadline={RENEW_DEADLINE}",
        f"--retry-period={RETRY_PERIOD}",
    )  # fmt: skip
    via_proxy = proxied_kubeconfig(kube_apiserver.kubeconfig, proxy, tmp_path / "kubeconfig")
    stalled = ControllerProcess(via_proxy, tmp_path / "stalled.log", *flags, "--identity=stalled")
    direct: ControllerProcess | None = None

    def lease() -> dict[str, Any]:
        spec: dict[str, Any] = kube.get(LEASES.path(ns, LEASE_NAME))["spec"]
        return spec

    try:
        stalled.wait_ready()
        eventually(lambda: leader(stalled) == 1, 15, "the proxied replica to lead")
        other = direct = ControllerProcess(
            kube_apiserver.kubeconfig, tmp_path / "direct.log", *flags, "--identity=direct"
        )
        other.wait_ready()
        time.sleep(2 * RETRY_PERIOD)  # a few renewals seen by both
        assert (leader(stalled), leader(other)) == (1, 0)
        assert (lease()["holderIdentity"], lease()["leaseTransitions"]) == ("stalled", 0)

        proxy.stall()
        stalled_at = time.monotonic()
        both: list[float] = []  # moments when both said they led

        def leaders() -> tuple[float | None, float | None]:
            pair = (leader(stalled), leader(other))
            if pair == (1, 1):
                both.append(time.monotonic() - stalled_at)
            return pair

        eventually(lambda: leaders()[0] == 0, RENEW_DEADLINE + 1.0,
                   "the stalled leader to stop leading")  # fmt: skip
        stopped = time.monotonic() - stalled_at
        eventually(lambda: leaders()[1] == 1, LEASE_DURATION + 4 * RETRY_PERIOD + 2.0,
                   "the direct replica to take over")  # fmt: skip
        taken_over = time.monotonic() - stalled_at
        print(f"\nstalled leader's gauge 0 after {stopped:.2f} s, the other's 1 after "
              f"{taken_over:.2f} s (lease {LEASE_DURATION:g} s, renew deadline "
              f"{RENEW_DEADLINE:g} s, retry {RETRY_PERIOD:g} s)")  # fmt: skip
        assert both == [], f"two leaders at once at {both} s after the stall"
        assert "not renewed within the renew deadline" in stalled.logs()
        spec = lease()
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("direct", 1)

        proxy.unstall()
        unstalled_at = time.monotonic()
        samples = []
        while time.monotonic() < unstalled_at + 4 * RETRY_PERIOD + 1.0:  # held bytes flow
            samples.append(leaders())
            time.sleep(0.05)
        assert set(samples) == {(0, 1)}, samples
        assert lease()["holderIdentity"] == "direct"

        released_at = time.monotonic()
        other.stop()  # releases: the first replica takes the empty holder at once
        eventually(lambda: leader(stalled) == 1, LEASE_DURATION, "the first replica to lead again")
        print(f"after SIGTERM to the leader, the first replica led again in "
              f"{time.monotonic() - released_at:.2f} s")  # fmt: skip
        spec = lease()
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("stalled", 2)
    finally:
        proxy.unstall()
        for process in (stalled, direct):
            if process is not None and process.proc.poll() is None:
                process.stop()
        proxy.close()
        print(f"controller logs: {tmp_path}")
