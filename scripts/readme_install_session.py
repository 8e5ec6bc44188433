"""Print the README's "Install in a cluster" session: the chart installed, inspected,
upgraded and uninstalled on the real kube-apiserver 1.20 the tests use. Does I/O.

Run from the repository root after ``./dev test`` has installed the tools:
``PATH=.tools/bin:$PATH .venv/bin/python scripts/readme_install_session.py``. It starts
its own API server (``../shared/tools/k8s``) with the stand-in CRDs of tests/support/chart.py
and stops it when done; the transcript goes to stdout, to paste into README.md.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.chart import helm_env, standin_crds  # noqa: E402
from tests.support.kube import APIServer, KubeAPI  # noqa: E402

ACCOUNT = "system:serviceaccount:ofobserve:ofobserve-scaler"
SESSION = (
    "helm install ofobserve deploy/helm/ofobserve -n ofobserve --create-namespace",
    "kubectl get deploy,svc,pdb,networkpolicy,servicemonitor,prometheusrule,certificate,"
    "configmap -n ofobserve",
    "kubectl get clustertriggerauthentication,clusterissuer",
    "kubectl get certificate -A",
    f"kubectl auth can-i list pods -n shop --as={ACCOUNT}",
    f"kubectl auth can-i watch pods -n shop --as={ACCOUNT}",
    f"kubectl auth can-i get secrets -n shop --as={ACCOUNT}",
    "helm upgrade ofobserve deploy/helm/ofobserve -n ofobserve --set scaler.replicas=3 "
    "--reuse-values",
    "helm uninstall ofobserve -n ofobserve",
)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = APIServer(Path(tmp) / "k8s")
        try:
            api = server.start()
            _prepare(api)
            home = Path(tmp) / "helm"
            env = {**helm_env(home), "KUBECONFIG": str(api.kubeconfig)}
            for command in SESSION:
                _show(command, env)
        finally:
            server.stop()


def _prepare(api: KubeAPI) -> None:
    for crd in standin_crds():
        api.kubectl("apply", "-f", "-", input=json.dumps(crd))
    names = [f"crd/{crd['metadata']['name']}" for crd in standin_crds()]
    api.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    for namespace in ("keda", "cert-manager", "monitoring", "shop"):
        api.ensure_namespace(namespace)


def _show(command: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        shlex.split(command), cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode not in (0, 1) or "error" in result.stderr.lower():
        raise SystemExit(f"{command} failed: {result.stderr}")
    print(f"$ {command}")
    print(result.stdout.rstrip())
    print()


if __name__ == "__main__":
    main()
