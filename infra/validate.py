#!/usr/bin/env python3
"""Renders each kustomize overlay of infra/ and checks every object it holds.

    python3 infra/validate.py [OVERLAY_DIR ...]     (default: infra/overlays/*)

- Rendering: `kubectl kustomize` (Debian's kubectl carries kustomize), else `kustomize build`.
- Kubernetes built-ins: against the Kubernetes OpenAPI schemas of KUBERNETES_VERSION, strict
  (unknown fields are errors), with PyPI's `kubernetes-validate`.
- Custom resources: against the schemas in infra/schemas/ (see its README), with `jsonschema`;
  a Rollout's pod template also as a Kubernetes PodTemplateSpec.
- References between objects: Services, PodDisruptionBudgets and ServiceMonitors select
  something; named ports exist; autoscalers target a Deployment that exists; a Rollout's
  analysis templates exist and get every argument they need; Secrets and ConfigMaps that are
  named exist (and hold the keys named), except EXTERNAL_SECRETS, which an operator creates.

Prints one line per overlay, each problem as `overlay: Kind/name: where: what`, and exits 1
if there is any.
"""

import glob
import os
import shutil
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
INFRA = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(INFRA, "schemas")
# Secrets the overlays expect to exist before they are applied (never rendered from git).
EXTERNAL_SECRETS = {"vitrine-secrets"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Rollout"}


def render(overlay):
    """The overlay's objects, rendered by kubectl kustomize or kustomize build."""
    if shutil.which("kubectl"):
        command = ["kubectl", "kustomize", overlay]
    elif shutil.which("kustomize"):
        command = ["kustomize", "build", overlay]
    else:
        sys.exit("neither kubectl nor kustomize is installed (Debian: apt-get install kubernetes-client)")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RenderError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


class RenderError(Exception):
    """An overlay that does not render."""


def custom_schemas():
    """(apiVersion, kind) -> JSON schema, from infra/schemas/*.yaml."""
    schemas = {}
    for path in sorted(glob.glob(os.path.join(SCHEMAS, "*.yaml"))):
        with open(path) as f:
            doc = yaml.safe_load(f)
        schema = dict(doc["schema"])
        schema["definitions"] = doc.get("definitions", {})
        schemas[(doc["apiVersion"], doc["kind"])] = schema
    return schemas


def name_of(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def check_schema(obj, customs, problems):
    """Schema problems of one object, appended to `problems` as (object, where, what)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in customs:
        validator = jsonschema.Draft7Validator(customs[key])
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(top)"
            problems.append((obj, where, error.message))
        if obj.get("kind") == "Rollout" and isinstance(obj.get("spec", {}).get("template"), dict):
            template = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": obj["metadata"]["name"]},
                "template": obj["spec"]["template"],
            }
            builtin(template, problems, report_as=obj, prefix="spec.")
        return
    builtin(obj, problems)


def builtin(obj, problems, report_as=None, prefix=""):
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        problems.append((report_as or obj, "(top)", f"no schema for {obj.get('apiVersion')} {obj.get('kind')}: add one to infra/schemas/"))
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path) or "(top)"
        problems.append((report_as or obj, prefix + where, error.message))


def pod_template(obj):
    if obj.get("kind") in WORKLOAD_KINDS:
        return obj.get("spec", {}).get("template") or {}
    return None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_references(objs, problems):
    """Problems in what the objects name of each other."""
    by_kind = {}
    for obj in objs:
        by_kind.setdefault(obj.get("kind"), {})[obj["metadata"]["name"]] = obj
    templates = [(o, pod_template(o)) for o in objs if pod_template(o) is not None]

    def selected(selector):
        return [(o, t) for o, t in templates if matches(selector, t.get("metadata", {}).get("labels", {}))]

    def keys_of(kind, name):
        obj = by_kind.get(kind, {}).get(name)
        if obj is None:
            return None
        return set(obj.get("data", {})) | set(obj.get("stringData", {}))

    def need(obj, where, kind, name, key=None):
        keys = keys_of(kind, name)
        if keys is None:
            if not (kind == "Secret" and name in EXTERNAL_SECRETS):
                problems.append((obj, where, f"{kind} `{name}` is not defined"))
        elif key is not None and key not in keys:
            problems.append((obj, where, f"{kind} `{name}` has no key `{key}` (it has {sorted(keys)})"))

    def walk_refs(obj, node, path):
        """Secret and ConfigMap references anywhere in `node`."""
        if isinstance(node, dict):
            for ref_kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                ref = node.get(field)
                if isinstance(ref, dict) and not ref.get("optional"):
                    need(obj, f"{path}.{field}", ref_kind, ref.get("name"), ref.get("key"))
            if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
                need(obj, f"{path}.secret", "Secret", node["secret"]["secretName"])
            if isinstance(node.get("configMap"), dict) and "name" in node["configMap"]:
                need(obj, f"{path}.configMap", "ConfigMap", node["configMap"]["name"])
            for k, v in node.items():
                walk_refs(obj, v, f"{path}.{k}" if path else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk_refs(obj, v, f"{path}[{i}]")

    for obj in objs:
        kind, spec = obj.get("kind"), obj.get("spec", {})
        walk_refs(obj, spec, "spec")
        if kind == "SpinApp" and spec.get("runtimeConfig", {}).get("loadFromSecret"):
            need(obj, "spec.runtimeConfig.loadFromSecret", "Secret", spec["runtimeConfig"]["loadFromSecret"], "runtime-config.toml")
        if kind in WORKLOAD_KINDS:
            template = pod_template(obj)
            selector = spec.get("selector", {}).get("matchLabels", {})
            if not matches(selector, template.get("metadata", {}).get("labels", {})):
                problems.append((obj, "spec.selector", "does not select the pod template's labels"))
            for i, c in enumerate(template.get("spec", {}).get("containers", [])):
                ports = {p.get("name") for p in c.get("ports", [])}
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    for action in ("httpGet", "tcpSocket"):
                        port = c.get(probe, {}).get(action, {}).get("port")
                        if isinstance(port, str) and port not in ports:
                            problems.append((obj, f"spec.template.spec.containers[{i}].{probe}", f"no container port named `{port}`"))
        if kind == "Service":
            chosen = selected(spec.get("selector", {}))
            if not chosen:
                problems.append((obj, "spec.selector", "selects no pods of any workload here"))
            for i, port in enumerate(spec.get("ports", [])):
                target = port.get("targetPort")
                if isinstance(target, str):
                    named = {p.get("name") for _, t in chosen for c in t.get("spec", {}).get("containers", []) for p in c.get("ports", [])}
                    if chosen and target not in named:
                        problems.append((obj, f"spec.ports[{i}].targetPort", f"no selected container has a port named `{target}`"))
        if kind == "PodDisruptionBudget" and not selected(spec.get("selector", {}).get("matchLabels", {})):
            problems.append((obj, "spec.selector", "selects no pods of any workload here"))
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = spec.get("scaleTargetRef", {})
            target_kind = target.get("kind", "Deployment")
            if target.get("name") not in by_kind.get(target_kind, {}):
                problems.append((obj, "spec.scaleTargetRef", f"no {target_kind} `{target.get('name')}` here"))
        if kind == "ServiceMonitor":
            services = [s for s in by_kind.get("Service", {}).values() if matches(spec.get("selector", {}).get("matchLabels", {}), s["metadata"].get("labels", {}))]
            if not services:
                problems.append((obj, "spec.selector", "selects no Service here"))
            for i, endpoint in enumerate(spec.get("endpoints", [])):
                if "port" in endpoint and not any(endpoint["port"] in {p.get("name") for p in s["spec"].get("ports", [])} for s in services):
                    problems.append((obj, f"spec.endpoints[{i}].port", f"no selected Service has a port named `{endpoint['port']}`"))
        if kind == "Rollout":
            canary = spec.get("strategy", {}).get("canary", {})
            analyses = [("spec.strategy.canary.analysis", canary.get("analysis"))]
            analyses += [(f"spec.strategy.canary.steps[{i}].analysis", s.get("analysis")) for i, s in enumerate(canary.get("steps", []))]
            for where, analysis in analyses:
                if not analysis:
                    continue
                given = {a.get("name") for a in analysis.get("args", [])}
                for ref in analysis.get("templates", []):
                    template = by_kind.get("AnalysisTemplate", {}).get(ref.get("templateName"))
                    if template is None:
                        problems.append((obj, where, f"no AnalysisTemplate `{ref.get('templateName')}` here"))
                        continue
                    for arg in template["spec"].get("args", []):
                        if "value" not in arg and "valueFrom" not in arg and arg["name"] not in given:
                            problems.append((obj, where, f"AnalysisTemplate `{ref['templateName']}` needs argument `{arg['name']}`"))


def validate(overlay, customs):
    """The problems of one overlay, as printable lines; and how many objects it has."""
    label = overlay
    try:
        objs = render(overlay)
    except RenderError as error:
        return [f"{label}: {error}"], 0
    problems = []
    for obj in objs:
        check_schema(obj, customs, problems)
    check_references(objs, problems)
    return [f"{label}: {name_of(o)}: {where}: {what}" for o, where, what in problems], len(objs)


def main():
    overlays = sys.argv[1:] or sorted(os.path.relpath(p) for p in glob.glob(os.path.join(INFRA, "overlays", "*")))
    customs = custom_schemas()
    failed = False
    for overlay in overlays:
        lines, count = validate(overlay, customs)
        if lines:
            failed = True
            print(f"{overlay}: {count} objects, {len(lines)} problems")
            for line in lines:
                print(f"  {line}")
        else:
            print(f"{overlay}: {count} objects valid (Kubernetes {KUBERNETES_VERSION}, strict)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
