"""The shared tool fixtures work: the binaries the later suites rely on are real and run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.support.prometheus import PrometheusServer


def test_prometheus_answers_queries(prometheus: PrometheusServer) -> None:
    [sample] = prometheus.wait_for("vector(1)")
    assert sample["value"][1] == "1"


def test_promtool_checks_rule_files(promtool: str, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {"name": "g", "rules": [{"record": "job:up:sum", "expr": "sum by (job) (up)"}]}
                ]
            }
        )
    )
    ok = subprocess.run([promtool, "check", "rules", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {"name": "g", "rules": [{"record": "job:up:sum", "expr": "sum by (job (up)"}]}
                ]
            }
        )
    )
    refused = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "parse error" in refused.stdout + refused.stderr


def test_helm_is_version_3(helm: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [helm, "version", "--short"],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v3.")
