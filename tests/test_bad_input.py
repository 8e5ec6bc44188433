"""Bad input is a feature: every case exits 1, names file, document and field, writes nothing."""

from __future__ import annotations

import contextlib
import os
import pwd
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import run_cli

GOOD = textwrap.dedent(
    """\
    apiVersion: core.openfunction.io/v1beta2
    kind: Function
    metadata:
      name: {name}
      namespace: default
    spec:
      image: example/fn:v1
      serving:
        triggers:
          http:
            port: 8080
    """
)


ROUTE_WITH_STRING_PATH = (
    "port: 8080\n        route:\n          rules:\n            - matches:\n"
    "                - path: /hello\n"
)


def function(name: str = "fn", extra_meta: str = "", serving: str = "") -> str:
    """A valid v1beta2 Function, with optional extra metadata and serving lines."""
    text = GOOD.format(name=name)
    if extra_meta:
        text = text.replace("  namespace: default\n", "  namespace: default\n" + extra_meta)
    if serving:
        text = text.replace("  serving:\n", "  serving:\n" + serving)
    return text


@dataclass
class Case:
    """Files to create (name -> text or bytes), CLI arguments, and expected stderr lines."""

    id: str
    files: dict[str, str | bytes]
    args: list[str]
    expected: list[str]
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None


def _unreadable(root: Path) -> None:
    (root / "locked.yaml").chmod(0o000)


CASES = [
    Case(
        "route-path-a-string",
        {"bad.yaml": function().replace("port: 8080\n", ROUTE_WITH_STRING_PATH)},
        ["bad.yaml"],
        [
            "error: bad.yaml[0] spec.serving.triggers.http.route.rules[0].matches[0].path: "
            "must be a mapping like {type: PathPrefix, value: /api} (Gateway API "
            "HTTPRouteMatch), got str"
        ],
    ),
    Case(
        "v1beta1-trigger-list-in-v1beta2",
        {"bad.yaml": function().replace("http:\n        port: 8080\n", "- type: kafka\n")},
        ["bad.yaml"],
        [
            "error: bad.yaml[0] spec.serving.triggers: must be a mapping in OpenFunction "
            "v1beta2, got a list (the API server refuses the Function); a list of KEDA "
            "triggers is the v1beta1 form: write them under "
            "spec.serving.scaleOptions.keda.triggers"
        ],
    ),
    Case(
        "wrong-types",
        {"bad.yaml": function(serving="    scaleOptions: 3\n    bindings:\n      foo: bar\n")},
        ["bad.yaml"],
        [
            "error: bad.yaml[0] spec.serving.scaleOptions: must be a mapping, got int",
            "error: bad.yaml[0] spec.serving.bindings.foo: must be a mapping (a Dapr component "
            "spec), got str",
        ],
    ),
    Case(
        "yaml-syntax",
        {"bad.yaml": "kind: Function\nmetadata: [unclosed\n"},
        ["bad.yaml"],
        ["error: bad.yaml: YAML syntax error at line 3, column 1"],
    ),
    Case(
        "wrong-api-version",
        {"bad.yaml": function().replace("v1beta2", "v1", 1)},
        ["bad.yaml"],
        [
            "error: bad.yaml[0] apiVersion: unsupported version 'core.openfunction.io/v1'; "
            "expected core.openfunction.io/v1beta1 or core.openfunction.io/v1beta2"
        ],
    ),
    Case(
        "wrong-kind",
        {"bad.yaml": function().replace("kind: Function", "kind: Functoin")},
        ["bad.yaml"],
        ["error: bad.yaml[0] kind: expected 'Function', got 'Functoin'; did you mean 'Function'?"],
    ),
    Case(
        "missing-name",
        {"bad.yaml": function().replace("  name: fn\n", "")},
        ["bad.yaml"],
        ["error: bad.yaml[0] metadata.name: required"],
    ),
    Case(
        "name-not-dns",
        {"bad.yaml": function(name="Hello_World")},
        ["bad.yaml"],
        ["error: bad.yaml[0] metadata.name: 'Hello_World' is not a DNS-1123 label"],
    ),
    Case(
        "duplicate",
        {"a.yaml": function(), "b.yaml": "---\n" + function()},
        ["a.yaml", "b.yaml"],
        [
            "error: b.yaml[0] metadata.name: duplicate Function default/fn "
            "(first defined at a.yaml[0])"
        ],
    ),
    Case(
        "negative-replicas",
        {"bad.yaml": function(serving="    scaleOptions:\n      minReplicas: -1\n")},
        ["bad.yaml"],
        ["error: bad.yaml[0] spec.serving.scaleOptions.minReplicas: must be >= 0, got -1"],
    ),
    Case(
        "max-below-min",
        {
            "bad.yaml": function(
                serving="    scaleOptions:\n      minReplicas: 5\n      maxReplicas: 2\n"
            )
        },
        ["bad.yaml"],
        ["error: bad.yaml[0] spec.serving.scaleOptions.maxReplicas: must be >= minReplicas (5)"],
    ),
    Case(
        "replicas-wrong-type",
        {"bad.yaml": function(serving="    scaleOptions:\n      maxReplicas: ten\n")},
        ["bad.yaml"],
        ["error: bad.yaml[0] spec.serving.scaleOptions.maxReplicas: must be an integer, got str"],
    ),
    Case(
        "unknown-settings-key",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  slo:\n    availabilty: 99\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.slo.availabilty: unknown key; "
            "did you mean 'availability'?"
        ],
    ),
    Case(
        "slo-out-of-range",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  slo:\n    availability: 100.5\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.slo.availability: "
            "Input should be less than 100 (got 100.5)"
        ],
    ),
    Case(
        "slo-zero",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  slo:\n    availability: 0\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.slo.availability: "
            "Input should be greater than 0 (got 0)"
        ],
    ),
    Case(
        "latency-threshold-zero",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  slo: {latency: {threshold: 0}}\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.slo.latency.threshold: "
            "Input should be greater than 0 (got 0)"
        ],
    ),
    Case(
        "latency-threshold-negative",
        {
            "fn.yaml": function(
                extra_meta="  annotations:\n    ofobserve.io/slo.latency.threshold: '-0.5'\n"
            )
        },
        ["fn.yaml"],
        [
            'error: fn.yaml[0] metadata.annotations."ofobserve.io/slo.latency.threshold": '
            "Input should be greater than 0 (got '-0.5')"
        ],
    ),
    Case(
        "unknown-dashboard-delivery",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  grafana: {delivery: helm}\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.grafana.delivery: Input should be 'json', "
            "'configmap' or 'grafana-operator' (got 'helm')"
        ],
    ),
    Case(
        "unknown-logs-backend",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  grafana: {logs: {kind: splunk}}\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.grafana.logs.kind: Input should be 'loki', "
            "'elasticsearch' or 'none' (got 'splunk')"
        ],
    ),
    Case(
        "slo-hundred",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  slo:\n    availability: 100\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.slo.availability: "
            "Input should be less than 100 (got 100)"
        ],
    ),
    Case(
        "latency-threshold-not-a-bucket",
        {
            "fn.yaml": function(),
            "ofobserve.yaml": "defaults:\n  slo: {latency: {threshold: 0.33}}\n",
        },
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: fn.yaml[0] settings.slo.latency.threshold: 0.33 s is not a histogram bucket "
            "of the knative profile (revision_request_latencies); nearest buckets: 0.3 s and "
            "0.35 s"
        ],
    ),
    Case(
        "unknown-window-set",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  slo: {window: 7d}\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        ["error: ofobserve.yaml[0] defaults.slo.window: Input should be '30d' or '28d' (got '7d')"],
    ),
    Case(
        "burn-window-order",
        {
            "fn.yaml": function(),
            "ofobserve.yaml": "defaults:\n  slo:\n    windows:\n"
            "      - {long: 5m, short: 1h, burnRate: 14.4, severity: critical}\n",
        },
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.slo.windows[0]: "
            "short window 1h must be shorter than long 5m"
        ],
    ),
    Case(
        "malformed-extra-matcher",
        {
            "fn.yaml": function(),
            "ofobserve.yaml": "defaults:\n  monitoring: {extraMatchers: {cluster-name: prod}}\n",
        },
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.monitoring.extraMatchers: "
            "'cluster-name' is not a valid Prometheus label name"
        ],
    ),
    Case(
        "reserved-extra-matcher",
        {
            "fn.yaml": function(),
            "ofobserve.yaml": "defaults:\n  monitoring: {extraMatchers: {namespace: prod}}\n",
        },
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.monitoring.extraMatchers: "
            "label 'namespace' is reserved by ofobserve's own selectors"
        ],
    ),
    Case(
        "unknown-alert-override",
        {
            "fn.yaml": function(),
            "ofobserve.yaml": "defaults:\n  alerting:\n"
            "    severityOverrides: {FunctionHighErorRate: critical}\n",
        },
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: fn.yaml[0] settings.alerting.severityOverrides.FunctionHighErorRate: "
            "unknown alert 'FunctionHighErorRate'; did you mean 'FunctionHighErrorRate'?"
        ],
    ),
    Case(
        "unknown-profile",
        {"fn.yaml": function(), "ofobserve.yaml": "defaults:\n  profile: prometheus\n"},
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] defaults.profile: Input should be 'ofobserve', 'knative', "
            "'keda-http' or 'dapr' (got 'prometheus')"
        ],
    ),
    Case(
        "bad-override",
        {
            "fn.yaml": function(),
            "ofobserve.yaml": "overrides:\n  - match: {namespace: default}\n"
            "    settings: {scaling: {minReplicas: 4, maxReplicas: 2}}\n",
        },
        ["fn.yaml", "-c", "ofobserve.yaml"],
        [
            "error: ofobserve.yaml[0] overrides[0].settings.scaling: "
            "maxReplicas (2) must be >= minReplicas (4)"
        ],
    ),
    Case(
        "bad-annotation-value",
        {
            "bad.yaml": function(
                extra_meta="  annotations:\n    ofobserve.io/slo.availability: high\n"
            )
        },
        ["bad.yaml"],
        [
            'error: bad.yaml[0] metadata.annotations."ofobserve.io/slo.availability": '
            "Input should be a valid number, unable to parse string as a number (got 'high')"
        ],
    ),
    Case(
        "unknown-annotation",
        {
            "bad.yaml": function(
                extra_meta="  annotations:\n    ofobserve.io/slo.availabilty: '99'\n"
            )
        },
        ["bad.yaml"],
        [
            'error: bad.yaml[0] metadata.annotations."ofobserve.io/slo.availabilty": '
            "unknown setting 'slo.availabilty'; did you mean 'slo.availability'?"
        ],
    ),
    Case(
        "empty-file",
        {"empty.yaml": ""},
        ["empty.yaml"],
        ["error: empty.yaml: empty file: no YAML documents"],
    ),
    Case(
        "binary-file",
        {"blob.yaml": b"\x7fELF\x02\x01\x01\x00\x00\x00"},
        ["blob.yaml"],
        ["error: blob.yaml: binary file, expected YAML text"],
    ),
    Case(
        "empty-directory",
        {"dir/readme.yaml": "# nothing here\nfoo: bar\n"},
        ["dir"],
        [
            "error: dir: directory holds no Function manifests "
            "(core.openfunction.io/v1beta1 or v1beta2)"
        ],
    ),
    Case("missing-file", {}, ["nope.yaml"], ["error: nope.yaml: no such file or directory"]),
    Case(
        "unreadable-file",
        {"locked.yaml": function()},
        ["locked.yaml"],
        ["error: locked.yaml: cannot read: permission denied"],
        prepare=_unreadable,
    ),
    Case(
        "all-errors-reported",
        {"a.yaml": function(name="Bad_A"), "b.yaml": function(name="Bad_B")},
        ["a.yaml", "b.yaml"],
        [
            "error: a.yaml[0] metadata.name: 'Bad_A' is not a DNS-1123 label",
            "error: b.yaml[0] metadata.name: 'Bad_B' is not a DNS-1123 label",
            "2 error(s); nothing was written",
        ],
    ),
    Case(
        "cluster-unreachable",
        {
            "kubeconfig": textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
        users: [{name: u, user: {token: t}}]
        contexts: [{name: x, context: {cluster: c, user: u}}]
        current-context: x
        """)
        },
        ["--from-cluster"],
        ["error: cluster: cannot list functions.core.openfunction.io: "],
        env={"KUBECONFIG": "kubeconfig"},
    ),
    Case(
        "cluster-no-config",
        {},
        ["--from-cluster"],
        [
            "error: cluster: no usable Kubernetes configuration: ",
            "set KUBECONFIG or run inside a cluster",
        ],
        env={"KUBECONFIG": "missing-kubeconfig", "KUBERNETES_SERVICE_HOST": ""},
    ),
]


@contextlib.contextmanager
def _as_unprivileged_user() -> Iterator[None]:
    """Root reads any file; drop the effective uid so permission bits apply."""
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody").pw_uid
    os.seteuid(nobody)
    try:
        yield
    finally:
        os.seteuid(0)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tmp_path.chmod(0o755)
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "fn.yaml").write_text(function(name="previous"))
    assert run_cli("render", "good", "-o", "out").exit_code == 0
    before = _snapshot(tmp_path / "out")
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.prepare:
        case.prepare(tmp_path)

    with _as_unprivileged_user() if case.prepare is _unreadable else contextlib.nullcontext():
        result = run_cli("render", *case.args, "-o", "out")

    assert result.exit_code == 1, result.stderr
    for line in case.expected:
        assert line in result.stderr, f"{line!r} not in:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert _snapshot(tmp_path / "out") == before, "the previous output must be untouched"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


def test_validate_reports_the_same_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.yaml").write_text(function(name="Bad_A"))
    result = run_cli("validate", "a.yaml")
    assert result.exit_code == 1
    assert "error: a.yaml[0] metadata.name: 'Bad_A' is not a DNS-1123 label" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no input: give PATHS (files, directories or -) or --from-cluster"),
        (["x.yaml", "--from-cluster"], "give either PATHS or --from-cluster, not both"),
        (["x.yaml", "-n", "shop"], "--namespace only applies with --from-cluster"),
        (["x.yaml", "--only", "nonsense"], "Invalid value for '--only'"),
        (["x.yaml", "-o", "-", "--check"], "--check compares against a directory"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run_cli("render", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_refuses_to_replace_a_foreign_group_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("fn.yaml").write_text(function())
    Path("out/monitors").mkdir(parents=True)
    Path("out/monitors/notes.txt").write_text("precious")
    result = run_cli("render", "fn.yaml", "-o", "out")
    assert result.exit_code == 1
    assert (
        "error: out/monitors: refusing to replace a non-empty directory that ofobserve did "
        "not create (no .ofobserve-output file in it)"
    ) in result.stderr
    assert Path("out/monitors/notes.txt").read_text() == "precious"
    assert sorted(p.name for p in Path("out").iterdir()) == ["monitors"]


@pytest.mark.parametrize("output", [".", "./"])
def test_output_into_a_shared_directory_touches_only_group_folders(
    output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("fn.yaml").write_text(function())
    Path("README.md").write_text("mine")
    result = run_cli("render", "fn.yaml", "-o", output, "--only", "patches")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "fn.yaml", "patches"]
    assert Path("README.md").read_text() == "mine"
    assert (tmp_path / "patches" / ".ofobserve-output").is_file()


def test_the_same_path_twice_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("fn.yaml").write_text(function())
    result = run_cli("render", "fn.yaml", "fn.yaml", "-o", "-", "--only", "patches")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("kind: Function") == 1
