"""The package surface: the public API is guarded, and every module says whether it does I/O."""

from __future__ import annotations

import importlib
import pkgutil

import ofobserve


def test_public_api_is_exactly_all() -> None:
    assert sorted(ofobserve.__all__) == [
        "Artifact",
        "ClusterUnavailable",
        "DriftDetected",
        "InvalidInput",
        "OfobserveError",
        "__version__",
        "load_subjects",
        "render_all",
        "serialize_tree",
    ]
    for name in ofobserve.__all__:
        assert hasattr(ofobserve, name), name


def test_every_module_docstring_says_whether_it_does_io() -> None:
    names = [m.name for m in pkgutil.walk_packages(ofobserve.__path__, "ofobserve.")]
    assert len(names) >= 15
    for name in names:
        if name == "ofobserve.__main__" or name.startswith("ofobserve.scaler.proto."):
            continue  # the generated stubs carry protoc's docstrings
        doc = importlib.import_module(name).__doc__ or ""
        assert "I/O" in doc or "Pure" in doc, f"{name}: docstring must say whether it does I/O"


def _setting_paths(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    from ofobserve.settings import _model_of

    paths = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        key = prefix + (field.alias or name)
        nested = _model_of(field.annotation)
        if nested is not None and issubclass(nested, BaseModel):
            paths += _setting_paths(nested, key + ".")
        else:
            paths.append(key)
    return paths


def test_every_setting_is_documented() -> None:
    from ofobserve.settings import Settings
    from tests.support.tools import REPO

    doc = (REPO / "docs" / "configuration.md").read_text()
    paths = _setting_paths(Settings)
    assert "slo.latency.threshold" in paths
    for path in paths:
        assert f"| `{path}` |" in doc, f"{path} is missing from docs/configuration.md"
