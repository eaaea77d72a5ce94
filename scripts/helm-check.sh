#!/usr/bin/env bash
# Checks the Helm chart and the Kubernetes manifests, offline:
#   helm lint --strict and helm template of deploy/helm/herald in single and
#   cluster mode (deploy/helm/herald/ci/*-values.yaml), assertions on what
#   each mode renders, and kubeconform -strict of the output and of
#   deploy/kubernetes against the Kubernetes schemas.
# helm and kubeconform are installed with go install (Go module proxy) into
# $(go env GOPATH)/bin when missing or of another version. No schema
# registry is reachable from CI, so the schemas are generated from the
# OpenAPI document in the k8s.io/kubernetes module (fetched through the Go
# module proxy) by scripts/k8s-schemas.py, and cached. ServiceMonitor and
# PodMonitor (Prometheus Operator CRDs) have no schema there: they are
# rendered and parsed, not validated.
# First run on a fresh machine: several minutes (compiling helm); then ~5 s.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v4.3.2
KUBECONFORM_VERSION=v0.8.0
K8S_VERSION=v1.37.2 # the schemas' Kubernetes release

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. scripts/go-tool.sh
go_tool helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

schemas=${XDG_CACHE_HOME:-$HOME/.cache}/herald/k8s-schemas-$K8S_VERSION
if [ ! -s "$schemas/deployment-apps-v1.json" ]; then
  dir=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  python3 scripts/k8s-schemas.py "$dir/api/openapi-spec/swagger.json" "$schemas.new"
  rm -rf "$schemas" && mv "$schemas.new" "$schemas"
fi
validate() {
  kubeconform -strict -summary -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -skip ServiceMonitor,PodMonitor "$@"
}

chart=deploy/helm/herald
for mode in single cluster; do
  helm lint --strict "$chart" -f "$chart/ci/$mode-values.yaml"
  helm template herald "$chart" -f "$chart/ci/$mode-values.yaml" >"$tmp/$mode.yaml"
  validate "$tmp/$mode.yaml"
done

# What each mode must render.
python3 - "$tmp/single.yaml" "$tmp/cluster.yaml" <<'PY'
import sys, yaml
def load(p):
    return {d["kind"]: d for d in yaml.safe_load_all(open(p)) if d}
single, cluster = load(sys.argv[1]), load(sys.argv[2])
def env(docs):
    c = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in c["env"]}, c
errs = []
def check(ok, msg):
    if not ok: errs.append(msg)
d = single["Deployment"]["spec"]
check(d["replicas"] == 1 and d["strategy"]["type"] == "Recreate", "single: 1 replica, Recreate")
check("PersistentVolumeClaim" in single and "PodDisruptionBudget" not in single, "single: a PVC, no PDB")
e, c = env(single)
check(e["HERALD_DATABASE"]["value"] == "/data/herald.db" and "HERALD_DATABASE_URL" not in e, "single: SQLite under /data")
d = cluster["Deployment"]["spec"]
check(d["replicas"] == 3 and d["strategy"]["type"] == "RollingUpdate", "cluster: 3 replicas, RollingUpdate")
check("PodDisruptionBudget" in cluster and "PersistentVolumeClaim" not in cluster, "cluster: a PDB, no PVC")
check("ServiceMonitor" in cluster and "PodMonitor" in cluster, "cluster: ServiceMonitor and PodMonitor")
e, c = env(cluster)
check(e["HERALD_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "herald-postgres", "key": "url"}, "cluster: database URL from its Secret")
check(e["HERALD_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "herald-secrets", "cluster: Redis URL from a Secret")
check(c["image"] == "ghcr.io/heraldhq/herald:v0.1.0", "cluster: pinned image")
for name, docs in (("single", single), ("cluster", cluster)):
    e, c = env(docs)
    p = docs["Deployment"]["spec"]["template"]["spec"]
    check(c["securityContext"]["readOnlyRootFilesystem"] and p["securityContext"]["runAsNonRoot"], name + ": read-only root, non-root")
    check(c["lifecycle"]["preStop"]["sleep"]["seconds"] == 5 and p["terminationGracePeriodSeconds"] == 30, name + ": preStop and grace")
    check(all(k in c for k in ("startupProbe", "readinessProbe", "livenessProbe")), name + ": probes")
if errs:
    sys.exit("helm-check: " + "; ".join(errs))
print("helm-check: single and cluster renders hold their invariants")
PY

# Every value is documented in the chart's README (maps whose keys are
# free-form, like config, count as one value).
python3 - "$chart" <<'PY'
import sys, yaml
chart = sys.argv[1]
values = yaml.safe_load(open(chart + "/values.yaml"))
readme = open(chart + "/README.md").read()
whole = {"config", "resources", "podSecurityContext", "securityContext"}
def keys(d, prefix=""):
    for k, v in d.items():
        key = prefix + k
        if isinstance(v, dict) and v and key not in whole and not prefix.startswith("probes."):
            yield from keys(v, key + ".")
        else:
            yield key
missing = [k for k in keys(values) if "`%s`" % k not in readme]
if missing:
    sys.exit("helm-check: values not documented in %s/README.md: %s" % (chart, ", ".join(missing)))
PY

# A render without a Secret must fail with a message, not produce a pod
# that cannot start.
if helm template herald "$chart" >/dev/null 2>"$tmp/err"; then
  echo "helm-check: a render without secret settings succeeded" >&2; exit 1
fi
grep -q "secret.existingSecret" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }

# The plain manifests (kubectl apply -k deploy/kubernetes).
validate deploy/kubernetes/{configmap,deployment,service,pdb,secret.example}.yaml
echo "helm-check: passed"
