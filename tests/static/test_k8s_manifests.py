"""The Kubernetes recipe in k8s/, checked offline: every object against the Kubernetes object
schema (kubernetes-validate's copy of the API's OpenAPI schema, strict: no unknown field), and the
parts fitting together. No API server runs here: nothing is applied, no kubelet mounts anything
(tests/unit/test_file_source.py reproduces the kubelet's way of updating the mounted file)."""

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.sidecar_process import REPO

# The Kubernetes release whose schema the manifests are checked against.
KUBERNETES = "1.33.0"
MANIFESTS = sorted((REPO / "k8s").glob("*.yaml"))


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object in k8s/, by kind and name."""
    found = {}
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_each_object_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_recipe_fits_together() -> None:
    found = objects()
    assert set(found) == {
        ("ConfigMap", "shop-version"),
        ("Deployment", "shop"),
        ("Service", "shop"),
        ("Ingress", "shop"),
        ("Ingress", "shop-version-sidecar"),
    }
    pod = found[("Deployment", "shop")]["spec"]["template"]["spec"]
    app, sidecar = pod["containers"]
    (mount,) = sidecar["volumeMounts"]
    assert "subPath" not in mount  # a subPath mount is never updated
    (volume,) = pod["volumes"]
    assert volume == {"name": mount["name"], "configMap": {"name": "shop-version"}}
    key = sidecar["args"][sidecar["args"].index("--version-file") + 1]
    assert key == f"{mount['mountPath']}/version" and "version" in found[("ConfigMap", "shop-version")]["data"]
    assert sidecar["args"][:2] == ["--source", "file"]

    ports = {port["name"]: port for port in found[("Service", "shop")]["spec"]["ports"]}
    assert ports["events"]["targetPort"] == sidecar["ports"][0]["name"] and sidecar["ports"][0]["containerPort"] == 8080
    assert ports["http"]["targetPort"] == app["ports"][0]["name"]

    def routes(name: str) -> list[tuple[str, str, str]]:
        (rule,) = found[("Ingress", name)]["spec"]["rules"]
        return [
            (path["path"], path["pathType"], path["backend"]["service"]["port"]["name"])
            for path in rule["http"]["paths"]
        ]

    assert routes("shop-version-sidecar") == [
        ("/events/version", "Exact", "events"),
        ("/events/reload.js", "Exact", "events"),
    ]
    assert routes("shop") == [("/", "Prefix", "http")]
    annotations = found[("Ingress", "shop-version-sidecar")]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 300
