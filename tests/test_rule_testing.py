"""``ofobserve test-rules``: the generated promtool tests, run on render's default output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG, EXAMPLES, run_cli

ONE = EXAMPLES / "sync-http-function.yaml"


def _render(out: Path, *extra: str) -> Path:
    result = run_cli("-q", "render", str(ONE), "-c", str(EXAMPLE_CONFIG), "--only", "rules",
                     "-o", str(out), *extra)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out


def test_the_default_prometheus_rule_output_passes(promtool: str, tmp_path: Path) -> None:
    out = _render(tmp_path / "out")
    assert yaml.safe_load((out / "rules/shop/sync-http-function.yaml").read_text())["kind"] == (
        "PrometheusRule"
    )
    result = run_cli("test-rules", str(out), "--promtool", promtool)
    assert result.exit_code == 0, result.output
    test_file = (out / "rules/tests/shop/sync-http-function.yaml").as_posix()
    assert f"Unit Testing:  {test_file}\n  SUCCESS" in result.stdout
    assert "note: 1 promtool test file(s) passed" in result.stderr
    # the rules folder itself is accepted too
    assert run_cli("test-rules", str(out / "rules"), "--promtool", promtool).exit_code == 0


def test_plain_rule_files_pass_as_they_are(promtool: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    settings = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    settings["defaults"]["alerting"]["delivery"] = "rule-file"
    config.write_text(yaml.safe_dump(settings))
    result = run_cli("-q", "render", str(ONE), "-c", str(config), "--only", "rules",
                     "-o", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    result = run_cli("test-rules", str(tmp_path / "out"), "--promtool", promtool)
    assert result.exit_code == 0, result.output
    assert "SUCCESS" in result.stdout


def test_a_failing_expectation_exits_1_with_promtools_words(promtool: str, tmp_path: Path) -> None:
    out = _render(tmp_path / "out")
    path = out / "rules/tests/shop/sync-http-function.yaml"
    doc = yaml.safe_load(path.read_text())
    for test in doc["tests"]:
        for check in test["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                alert["exp_labels"]["severity"] = "info"
    path.write_text(yaml.safe_dump(doc))
    result = run_cli("test-rules", str(out), "--promtool", promtool)
    assert result.exit_code == 1
    assert f"Unit Testing:  {path.as_posix()}\n  FAILED:" in result.stdout
    assert 'severity="info"' in result.stdout
    assert "note: 1 promtool test file(s) FAILED" in result.stderr


NO_TESTS = (
    "no promtool tests here: expected rules/tests/ (a render output directory) or tests/ "
    "(its rules folder)"
)


@pytest.mark.parametrize(("sub", "message"), [("missing", "no such directory"), ("", NO_TESTS)])
def test_a_directory_without_tests_is_bad_input(tmp_path: Path, sub: str, message: str) -> None:
    target = tmp_path / sub if sub else tmp_path
    result = run_cli("test-rules", str(target))
    assert result.exit_code == 1
    assert f"error: {target}: {message}" in result.stderr


def test_a_missing_promtool_is_named(tmp_path: Path) -> None:
    out = _render(tmp_path / "out")
    result = run_cli("test-rules", str(out), "--promtool", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert f"error: --promtool {tmp_path}/nope: not an executable file" in result.stderr


def test_bad_jobs_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("test-rules", str(tmp_path), "--jobs", "0")
    assert result.exit_code == 2
    assert "Invalid value for '-j' / '--jobs'" in result.stderr
