"""A function together with its resolved settings: the unit every builder works on.

Pure, no I/O.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ofobserve import alerts, profiles
from ofobserve.errors import Problem
from ofobserve.model import Function
from ofobserve.settings import Settings


@dataclass(frozen=True)
class Subject:
    """One function to render, with the settings in force for it."""

    function: Function
    settings: Settings

    @property
    def profile(self) -> str:
        return self.settings.profile_for(self.function.runtime)

    @property
    def metric_profile(self) -> profiles.Profile:
        """The profile's signals, for this function's runtime and inputs."""
        return profiles.profile(
            self.profile,
            self.settings.knative_metrics,
            (i.kind for i in self.function.inputs),
        )


def check_subject(subject: Subject) -> list[Problem]:
    """Rules that need both the function and its settings. Pure.

    The latency SLO threshold must be a histogram bucket bound of the profile, or no query
    can count the requests slower than it (the native profile adds it to its buckets).
    Severity overrides must name an alert whose severity is not set by its window.
    """
    return _check_overrides(subject) + _check_threshold(subject)


def _check_overrides(subject: Subject) -> list[Problem]:
    problems = []
    for name in subject.settings.alerting.severity_overrides:
        if name in alerts.NAMES and name not in alerts.BURN_RATE:
            continue
        where = subject.function.source.at(f"settings.alerting.severityOverrides.{name}")
        if name in alerts.BURN_RATE:
            message = "burn-rate alerts take their severity from slo.windows"
        else:
            close = difflib.get_close_matches(name, alerts.NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"unknown alert {name!r}{hint}"
        problems.append(Problem(where, message))
    return problems


def _check_threshold(subject: Subject) -> list[Problem]:
    threshold = subject.settings.slo.latency.threshold
    for histogram in subject.metric_profile.histograms:
        bounds = histogram.bucket_seconds()
        if not bounds or any(abs(b - threshold) <= 1e-9 * max(b, 1) for b in bounds):
            continue
        nearest = " and ".join(f"{b:g} s" for b in profiles.nearest_buckets(bounds, threshold))
        where = subject.function.source.at("settings.slo.latency.threshold")
        return [
            Problem(
                where,
                f"{threshold:g} s is not a histogram bucket of the "
                f"{subject.profile} profile ({histogram.metric}); nearest buckets: "
                f"{nearest}",
            )
        ]
    return []
