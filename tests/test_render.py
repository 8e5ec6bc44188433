"""The render pipeline end to end through the CLI: determinism, --check, streams, stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG, EXAMPLES, run_cli
from tests.support.tools import REPO

#: Where the committed renders of examples/ live, and which groups each holds (DESIGN.md:
#: rules/ and dashboards/ at the top level; ./dev examples writes them all).
COMMITTED = (
    (REPO, ("rules", "dashboards")),
    (REPO / "examples" / "rendered", ("patches", "monitors", "scaling", "telemetry")),
)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_render_twice_gives_byte_identical_trees(rendered_examples: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert (
        run_cli("render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), "-o", str(again)).exit_code == 0
    )
    first, second = _tree(rendered_examples), _tree(again)
    assert first == second
    assert len(first) > 20


def test_output_has_no_absolute_paths_or_timestamps(rendered_examples: Path) -> None:
    for rel, data in _tree(rendered_examples).items():
        text = data.decode()
        assert str(REPO) not in text, rel
        assert "/tmp/" not in text, rel
        assert "creationTimestamp" not in text, rel


@pytest.mark.parametrize(("root", "groups"), COMMITTED, ids=lambda v: str(v))
def test_committed_example_output_has_not_drifted(root: Path, groups: tuple[str, ...]) -> None:
    only = [arg for g in groups for arg in ("--only", g)]
    result = run_cli(
        "render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), *only, "-o", str(root), "--check"
    )
    assert result.exit_code == 0, result.stderr + "\nrun: ./dev examples"


def test_check_catches_a_one_byte_change_in_every_file(rendered_examples: Path) -> None:
    """One byte flipped near the end of every file: --check names each of them."""
    files = sorted(
        p for p in rendered_examples.rglob("*") if p.is_file() and p.name != ".ofobserve-output"
    )
    for path in files:
        original = path.read_bytes()
        path.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])
    result = run_cli(
        "render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), "-o", str(rendered_examples), "--check"
    )
    assert result.exit_code == 1
    drifted = {line.removeprefix("drifted: ") for line in result.stderr.splitlines()}
    assert {str(p) for p in files} <= drifted
    assert f"{len(files)} file(s) differ" in result.stderr


def test_check_reports_missing_and_extra_files(rendered_examples: Path) -> None:
    (rendered_examples / "monitors" / "shop" / "order-processor.yaml").unlink()
    (rendered_examples / "monitors" / "stale.yaml").write_text("old: true\n")
    result = run_cli(
        "render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), "-o", str(rendered_examples), "--check"
    )
    assert result.exit_code == 1
    assert f"drifted: {rendered_examples}/monitors/shop/order-processor.yaml" in result.stderr
    assert f"drifted: {rendered_examples}/monitors/stale.yaml" in result.stderr


def test_render_replaces_previous_output(rendered_examples: Path, tmp_path: Path) -> None:
    single = tmp_path / "one.yaml"
    single.write_text((EXAMPLES / "hello-world.yaml").read_text())
    assert run_cli("render", str(single), "-o", str(rendered_examples)).exit_code == 0
    assert sorted(p for p in _tree(rendered_examples) if not p.endswith(".ofobserve-output")) == [
        "dashboards/default/hello-world.yaml",
        "dashboards/ofobserve-overview.yaml",
        "dashboards/ofobserve-scaler.yaml",
        "monitors/default/hello-world.yaml",
        "patches/default/hello-world.yaml",
        "rules/default/hello-world.yaml",
        "rules/fleet/common.yaml",
        "rules/fleet/knative-opencensus.yaml",
        "rules/tests/default/hello-world.yaml",
        "telemetry/default/hello-world.yaml",
        "telemetry/fluent-bit-configmap.yaml",
        "telemetry/fluent-bit-values.yaml",
        "telemetry/fluent-bit.yaml",
        "telemetry/otel-collector-configmap.yaml",
        "telemetry/otel-collector.yaml",
    ]
    leftovers = [p.name for p in rendered_examples.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_yaml_stream_matches_the_files(rendered_examples: Path) -> None:
    result = run_cli("render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), "-o", "-")
    assert result.exit_code == 0
    docs = list(yaml.load_all(result.stdout, Loader=yaml.CSafeLoader))
    files = {
        rel: yaml.load(data, Loader=yaml.CSafeLoader)  # JSON is YAML too
        for rel, data in _tree(rendered_examples).items()
        if rel.endswith((".yaml", ".json"))
    }
    assert docs == [files[rel] for rel in sorted(files)]
    assert "# Source: monitors/default/hello-world.yaml" in result.stdout


def test_json_lines_stream() -> None:
    result = run_cli(
        "render",
        str(EXAMPLES / "order-processor.yaml"),
        "-o",
        "-",
        "--format",
        "json",
        "--only",
        "monitors",
    )
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == ["monitors/shop/order-processor.yaml"]
    assert lines[0]["content"]["kind"] == "PodMonitor"


def test_stdin_input_and_skipped_documents_note() -> None:
    text = (EXAMPLES / "async-kafka-function.yaml").read_text()
    result = run_cli("render", "-", "-o", "-", "--only", "patches", input=text)
    assert result.exit_code == 0, result.stderr
    assert "note: skipping -[1]: dapr.io/v1alpha1 Component (not a Function)" in result.stderr
    patch = yaml.safe_load(result.stdout)
    assert patch["spec"]["serving"]["labels"] == {"ofobserve.io/function": "async-kafka-function"}


def test_summary_table_lists_functions_and_artifacts() -> None:
    result = run_cli("render", str(EXAMPLES), "-c", str(EXAMPLE_CONFIG), "-o", "-")
    lines = result.stderr.splitlines()
    header = next(line for line in lines if line.startswith("FUNCTION"))
    assert header.split() == [
        "FUNCTION",
        "RUNTIME",
        "PROFILE",
        "patches",
        "monitors",
        "scaling",
        "rules",
        "telemetry",
        "dashboards",
    ]
    row = next(line for line in lines if line.startswith("shop/sync-http-function"))
    assert row.split()[3:] == ["yes", "yes", "-", "yes", "yes", "yes"]
    keda = next(line for line in lines if line.startswith("default/keda-http-function"))
    assert keda.split()[3:] == ["yes", "-", "-", "yes", "yes", "yes"]
    kafka = next(line for line in lines if line.startswith("default/async-kafka-function"))
    assert kafka.split()[3:] == ["yes"] * 6


def test_quiet_suppresses_notes_and_summary() -> None:
    result = run_cli("-q", "render", str(EXAMPLES), "-o", "-")
    assert result.exit_code == 0
    assert result.stderr == ""


@pytest.mark.parametrize("env_output", ["from-env"])
def test_env_var_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_output: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFOBSERVE_OUTPUT", env_output)
    monkeypatch.setenv("OFOBSERVE_CONFIG", str(EXAMPLE_CONFIG))
    assert run_cli("render", str(EXAMPLES / "order-processor.yaml")).exit_code == 0
    monitor = yaml.safe_load(
        (tmp_path / env_output / "monitors/shop/order-processor.yaml").read_text()
    )
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_list_documents_are_unwrapped(tmp_path: Path) -> None:
    items = [
        yaml.safe_load((EXAMPLES / n).read_text())
        for n in ("hello-world.yaml", "order-processor.yaml")
    ]
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    result = run_cli("render", str(path), "-o", "-", "--only", "patches")
    assert result.exit_code == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout)]
    assert names == ["hello-world", "order-processor"]
