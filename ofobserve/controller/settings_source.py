"""The settings from a watched ConfigMap (the same format as the settings file). Pure, no
I/O: the informer hands it each version of the ConfigMap.

A ConfigMap that does not parse, or is deleted, keeps the last good settings in force
(logged): deleting it by mistake must not re-render every function without, say, the
``release`` label Prometheus selects on. A ConfigMap absent at start means the built-in
defaults until one appears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import yaml

from ofobserve.errors import InvalidInput, Location, Problem
from ofobserve.settings import Config, parse_config

log = logging.getLogger("ofobserve.controller")


def parse_settings_text(text: str, source: str) -> Config:
    """One YAML document, as a settings file. Raises :class:`InvalidInput`."""
    where = Location(source)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput([Problem(where, f"YAML syntax error{at}: {reason}")]) from None
    if len(documents) > 1:
        problem = Problem(where, f"expected one YAML document, found {len(documents)}")
        raise InvalidInput([problem])
    return parse_config(documents[0] if documents else {}, where)


class SettingsSource:
    def __init__(
        self, config_map: tuple[str, str], key: str, apply: Callable[[Config], None]
    ) -> None:
        self.namespace, self.name = config_map
        self.key, self.apply = key, apply
        self.seen = False
        self.error = ""
        #: Whether settings were applied from the ConfigMap (or the built-ins for its absence).
        self.applied = False

    @property
    def source(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name} {self.key}"

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.seen = True
        if kind == "DELETED":
            if self.applied:
                log.warning("%s was deleted: the last good settings stay in force", self.source)
                return
            log.warning("%s was deleted: using the built-in settings", self.source)
            self._apply(Config(source="<built-in>"))
            return
        data = obj.get("data") or {}
        if self.key not in data:
            self._refuse(f"{self.source}: no key {self.key!r} (has: {', '.join(sorted(data))})")
            return
        try:
            config = parse_settings_text(str(data[self.key]), self.source)
        except InvalidInput as exc:
            self._refuse("; ".join(str(p) for p in exc.problems))
            return
        self.error = ""
        self._apply(config)

    def absent(self) -> None:
        """The first list found no ConfigMap: the built-in settings until one appears."""
        if not self.seen:
            self.seen = True
            log.warning("%s does not exist: using the built-in settings", self.source)
            self._apply(Config(source="<built-in>"))

    def _apply(self, config: Config) -> None:
        self.applied = True
        self.apply(config)

    def _refuse(self, message: str) -> None:
        self.error = message
        log.error("settings refused, the last good ones stay in force: %s", message)
