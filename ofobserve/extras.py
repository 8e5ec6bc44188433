"""The ``ofobserve`` console script, and which install extra each command needs.

Does I/O: reads ``sys.argv``, looks up installed modules (without importing them) and, when
a command's extra is missing, writes one line to stderr and exits 1. Otherwise it hands
over to :mod:`ofobserve.cli`. The base install (``pip install ofobserve``) is the function
side, ``ofobserve.instrument`` and ``ofobserve.tracing``: it has neither click nor the
renderers' or the scaler's libraries, so the check runs before the command line loads.
Standard library only.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

#: The modules each extra brings, as pyproject.toml's ``[project.optional-dependencies]``
#: lists them (tests/test_light.py checks the two agree).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "render": ("click", "yaml", "pydantic", "kubernetes", "grafanalib"),
    "scaler": (
        "click",
        "yaml",
        "kubernetes",
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "google.protobuf",
        "prometheus_api_client",
        "requests",
    ),
}
EXTRA_MODULES["simulate"] = ("click", "yaml", "numpy", "matplotlib", "prometheus_api_client")
EXTRA_MODULES["demo"] = tuple(
    dict.fromkeys(
        EXTRA_MODULES["render"] + EXTRA_MODULES["scaler"] + EXTRA_MODULES["simulate"] + ("rich",)
    )
)
EXTRA_MODULES["controller"] = tuple(
    dict.fromkeys(EXTRA_MODULES["render"] + EXTRA_MODULES["scaler"])
)
#: The extra each command needs; a command not listed here needs only the command line's
#: own modules (``click`` and ``yaml``, in every extra).
COMMAND_EXTRAS = {
    "render": "render",
    "validate": "render",
    "test-rules": "render",
    "scaler": "scaler",
    "controller": "controller",
    "simulate": "simulate",
    "demo": "demo",
}
CLI_MODULES = ("click", "yaml")
#: The options the ``ofobserve`` group itself takes before a command.
GROUP_FLAGS = ("-q", "--quiet", "-v", "--verbose")


def install_hint(extra: str) -> str:
    return f"pip install 'ofobserve[{extra}]'"


def missing_modules(modules: Sequence[str]) -> list[str]:
    """Those of ``modules`` that are not installed (found by spec, not imported)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # a dotted name whose parent package is absent
            found = False
        if not found:
            missing.append(name)
    return missing


def command_of(argv: Sequence[str]) -> str | None:
    """The command named in ``ofobserve``'s arguments, or ``None`` (``--help``, none)."""
    for arg in argv:
        if arg in GROUP_FLAGS:
            continue
        return None if arg.startswith("-") else arg
    return None


def missing_extra(argv: Sequence[str]) -> str | None:
    """The one-line error for a command whose extra is not installed, else ``None``."""
    command = command_of(argv)
    extra = COMMAND_EXTRAS.get(command or "")
    if extra is not None:
        if missing_modules(EXTRA_MODULES[extra]):
            return f"ofobserve {command} needs the {extra} extra: {install_hint(extra)}"
        return None
    if missing_modules(CLI_MODULES):
        return (
            "the ofobserve command needs an extra (this install has only ofobserve.instrument): "
            f"{install_hint('render')}, {install_hint('scaler')} or {install_hint('all')}"
        )
    return None


def main() -> None:
    """The ``ofobserve`` command: the extra check, then :func:`ofobserve.cli.main`."""
    error = missing_extra(sys.argv[1:])
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    from ofobserve.cli import main as cli_main

    cli_main()
