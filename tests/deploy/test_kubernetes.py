"""The Kubernetes manifests (README, Kubernetes): valid against the Kubernetes schemas, offline and
strict (PyPI kubernetes-validate), the ServiceMonitor against the prometheus-operator CRD's schema
(npm @kubernetes-models/prometheus-operator, which the test installs into tests/deploy),
and consistent with each other and with the image they run."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.conftest import ROOT
from tests.deploy.dockerfile import read_dockerfile
from tests.servers import _require

MANIFESTS = ROOT / "deploy" / "kubernetes"
HERE = Path(__file__).parent
IMAGE = read_dockerfile(ROOT / "Dockerfile")
CRD_GROUP = "monitoring.coreos.com/v1"


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> dict[str, Any]:
    (document,) = [d for d in documents() if d["kind"] == kind]
    return document


def kubernetes_problems(document: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{error.path}: {error.message}"
    return None


def crd_problems(docs: list[dict[str, Any]]) -> str:
    """What the CRD schemas find wrong in `docs` (empty when all are valid)."""
    if not (HERE / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
        # Installed from the npm registry on first use, as package.json pins it.
        npm = _require(shutil.which("npm"), "npm")
        subprocess.run([npm, "install", "--prefix", str(HERE), "--no-audit", "--no-fund",
                        "--silent"], check=True, timeout=300, stdin=subprocess.DEVNULL)
    node = _require(shutil.which("node"), "nodejs")
    result = subprocess.run([node, str(HERE / "validate_crd.mjs")], input=json.dumps(docs),
                            capture_output=True, text=True, cwd=HERE, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


def test_core_resources_are_valid_against_the_kubernetes_schemas():
    core = [d for d in documents() if d["apiVersion"] != CRD_GROUP]
    assert {d["kind"] for d in core} == {"Deployment", "Service", "PersistentVolumeClaim"}
    assert [kubernetes_problems(d) for d in core] == [None] * len(core)


def test_the_service_monitor_is_valid_against_the_prometheus_operator_crd():
    assert crd_problems([by_kind("ServiceMonitor")]) == ""


def test_the_validators_reject_what_a_cluster_would():
    """The checks above can fail: an unknown field, a wrong type, a malformed duration."""
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    assert "httpGett" in kubernetes_problems(deployment)
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["replicas"] = "one"
    assert kubernetes_problems(deployment)
    monitor = copy.deepcopy(by_kind("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "1 minute"
    assert "interval" in crd_problems([monitor])


def test_the_pod_runs_the_image_as_its_user_with_history_on_the_claim():
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    uid, gid = map(int, IMAGE.user.split(":"))
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert pod["securityContext"]["fsGroup"] == gid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (mount,) = container["volumeMounts"]
    assert [mount["mountPath"]] == IMAGE.volumes
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = by_kind("PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert [p["containerPort"] for p in container["ports"]] == list(map(int, IMAGE.exposed))
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"


def test_the_pod_sets_every_variable_the_image_config_requires():
    config = (ROOT / IMAGE.copied_to("/etc/usage-exporter/config.yaml")).read_text()
    required = set(re.findall(r"\$\{([A-Z_]+)\}", config))  # those without a :-default
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert required and required <= {variable["name"] for variable in container["env"]}


def test_the_service_monitor_scrapes_the_pods_metrics_port():
    deployment, service, monitor = (by_kind(k) for k in ("Deployment", "Service",
                                                         "ServiceMonitor"))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    service_labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    (port,) = service["spec"]["ports"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [port["name"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
