"""A function together with its resolved settings: the unit every builder works on.

Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

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
