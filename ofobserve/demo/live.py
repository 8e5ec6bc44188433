"""The live terminal view (``rich``), or a line every 10 s when the output is no terminal.
Does I/O (writes to the terminal)."""

from __future__ import annotations

from typing import Any

from ofobserve.demo.observe import Row


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


class View:
    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self.live: Any = None
        self.enabled = enabled and self.console.is_terminal
        self._last_line = -10.0

    def __enter__(self) -> View:
        if self.enabled:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def show(self, row: Row, urls: dict[str, str]) -> None:
        if self.live is not None:
            self.live.update(self._table(row, urls))
        elif row.t - self._last_line >= 10:
            self._last_line = row.t
            alerts = ", ".join(row.alerts) or "none"
            print(
                f"t={row.t:5.0f}s {row.phase:<12} offered {row.offered:5.1f}/s "
                f"served {row.served:3d}/s failed {row.failed:3d}/s lag {row.lag:4d} "
                f"replicas {row.ready}/{row.desired} p95 {_s(row.p95_end_to_end)} "
                f"alerts: {alerts}",
                flush=True,
            )

    def _table(self, row: Row, urls: dict[str, str]) -> Any:
        from rich.table import Table

        table = Table(title=f"ofobserve demo — {row.phase} — {row.t:.0f} s", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("offered", f"{row.offered:.1f} events/s")
        table.add_row("served / failed", f"{row.served} / {row.failed} per s")
        table.add_row("Prometheus rate", "-" if row.rate_prometheus is None
                      else f"{row.rate_prometheus:.1f}/s (5m window, scaled)")  # fmt: skip
        table.add_row("queued (lag)", str(row.lag))
        table.add_row("in flight", str(row.in_flight))
        table.add_row("p95 end to end", _s(row.p95_end_to_end))
        table.add_row("p95 function", _s(row.p95_function))
        table.add_row("scaler says", "-" if row.metric is None else f"{row.metric:g} replicas")
        table.add_row("replicas", f"{row.ready} ready / {row.desired} desired")
        table.add_row("firing", ", ".join(row.alerts) or "none")
        for name, url in urls.items():
            table.add_row(name, url)
        return table
