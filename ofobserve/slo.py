"""SLO arithmetic: objectives, error budgets and the burn-rate window sets. Pure, no I/O.

The default window sets are the Google SRE workbook's (chapter 5, "Alerting on SLOs"): page
when 2 % of the period's budget burns in 1 h or 5 % in 6 h, ticket when 10 % burns in 1 d
or 3 d. The burn rate of each follows from the period: ``budget share * period / long``,
so 30 days give 14.4, 6, 3 and 1, and 28 days 13.44, 5.6, 2.8 and 0.933.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ofobserve import conventions as c
from ofobserve.settings import BurnWindow, Settings, window_seconds

#: (share of the period's budget, long window, short window, severity).
WORKBOOK_WINDOWS = (
    (Decimal("0.02"), "1h", "5m", "critical"),
    (Decimal("0.05"), "6h", "30m", "critical"),
    (Decimal("0.10"), "1d", "2h", "warning"),
    (Decimal("0.10"), "3d", "6h", "warning"),
)
PERIOD_DAYS = {"30d": 30, "28d": 28}


def window_set(period: str) -> tuple[BurnWindow, ...]:
    """The workbook windows for a 30- or 28-day period."""
    period_s = Decimal(PERIOD_DAYS[period] * 86400)
    return tuple(
        BurnWindow(
            long=long,
            short=short,
            burn_rate=float(round(share * period_s / window_seconds(long), 4)),
            severity=severity,
        )
        for share, long, short, severity in WORKBOOK_WINDOWS
    )


@dataclass(frozen=True)
class Objective:
    """One SLO of a function: its name, target ratio and error budget, as exact decimals."""

    name: str  # conventions.SLO_AVAILABILITY or SLO_LATENCY
    objective: Decimal  # e.g. 0.995

    @property
    def budget(self) -> Decimal:
        return 1 - self.objective

    @property
    def percent(self) -> str:
        return plain(self.objective * 100)


def objectives(settings: Settings) -> tuple[Objective, Objective]:
    """The availability and latency SLOs of a function."""
    return (
        Objective(c.SLO_AVAILABILITY, Decimal(str(settings.slo.availability)) / 100),
        Objective(c.SLO_LATENCY, Decimal(str(settings.slo.latency.quantile))),
    )


def burn_windows(settings: Settings) -> tuple[BurnWindow, ...]:
    """The configured windows, else the period's workbook set."""
    return settings.slo.windows or window_set(settings.slo.window)


def sli_windows(settings: Settings) -> tuple[str, ...]:
    """Every window an SLI ratio is recorded over, shortest first (the current-burn window
    included)."""
    windows = {c.SLO_CURRENT_WINDOW}
    for w in burn_windows(settings):
        windows |= {w.long, w.short}
    return tuple(sorted(windows, key=window_seconds))


def plain(value: Decimal | float) -> str:
    """A number as PromQL and humans read it, without exponent or trailing zeros:
    ``0.005``, ``14.4``, ``30``."""
    return format(Decimal(str(value)).normalize(), "f")
