"""The progress bar: silent for fast renders, shown on a terminal after one second."""

from __future__ import annotations

import io
from collections.abc import Iterator

from ofobserve.cli import _progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _clock(step: float) -> Iterator[float]:
    now = 0.0
    while True:
        yield now
        now += step


def test_no_bar_when_fast() -> None:
    out = _Terminal()
    ticks = _clock(0.01)
    assert list(_progress(list(range(50)), out, lambda: next(ticks))) == list(range(50))
    assert out.getvalue() == ""


def test_bar_after_one_second_on_a_terminal() -> None:
    out = _Terminal()
    ticks = _clock(0.3)
    assert list(_progress(list(range(20)), out, lambda: next(ticks))) == list(range(20))
    assert "rendering" in out.getvalue()


def test_no_bar_when_not_a_terminal() -> None:
    out = io.StringIO()
    ticks = _clock(0.3)
    assert list(_progress(list(range(20)), out, lambda: next(ticks))) == list(range(20))
    assert out.getvalue() == ""
