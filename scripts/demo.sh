#!/usr/bin/env bash
# The main job, end to end, on the embedded default: no Databricks account, no Docker Hub.
#
#   examples/quickstart.ipynb --render--> build context --build--> image
#     --push--> htpasswd registry on 127.0.0.1 --check--> DCS requirements
#     --launch--> local preflight workspace (pull with basic_auth, checks, driver container,
#                 init scripts) --> RUNNING --> terminate
#
# Then it writes $DCS_DEMO_DIR/examples.env, the DCS_EXAMPLE_* settings every notebook in
# examples/ reads (local base, this registry, its user; the password only as a variable read
# from the password file at `source` time), and runs every example top to bottom as "Run All"
# would, so `source /tmp/dcs-demo/examples.env && jupyter lab examples/` works the same.
#
# Run through `bash scripts/dev-env.sh demo`, which installs and starts what this needs.
# Environment: DCS_DEMO_DIR (default /tmp/dcs-demo), DCS_DEMO_REGISTRY_PORT (default 5000),
#              DCS_DEMO_KEEP=1 leaves the local cluster running,
#              DCS_DEMO_EXAMPLES=0 skips running the example notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="$PWD/examples"
WORK="${DCS_DEMO_DIR:-/tmp/dcs-demo}"
PORT="${DCS_DEMO_REGISTRY_PORT:-5000}"
REGISTRY="127.0.0.1:${PORT}"
IMAGE="${REGISTRY}/dcs-quickstart:0.1.0"
REGISTRY_USER=dcs-ci  # the username examples/cluster.json names
BASE_IMAGE=dcs-magic/dcs-base:bookworm  # stands in for databricksruntime/standard:15.4-LTS
OS_BASE="${BASE_IMAGE}-root"            # its debootstrap root: stands in for debian:bookworm-slim

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

registry_status() {  # HTTP status of /v2/ (401: up and asking for credentials), 000 when down
  python3 - "$REGISTRY" <<'EOF'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print("000")
EOF
}

start_registry() {  # an htpasswd-protected docker-registry, its state under $WORK/registry
  local dir="$WORK/registry"
  mkdir -p "$dir/data"
  if [ ! -s "$dir/password" ]; then  # generated once; never on a command line
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(18))' >"$dir/password")
  fi
  DCS_REGISTRY_PASSWORD="$(cat "$dir/password")"
  export DCS_REGISTRY_PASSWORD
  local status
  status="$(registry_status)"
  if [ "$status" = 401 ]; then
    return 0
  elif [ "$status" != 000 ]; then
    echo "demo: $REGISTRY answers /v2/ with HTTP $status, not an htpasswd registry of this demo;" \
         "set DCS_DEMO_REGISTRY_PORT to a free port" >&2
    exit 1
  fi
  htpasswd -iBn "$REGISTRY_USER" <"$dir/password" >"$dir/htpasswd"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
http: {addr: $REGISTRY}
auth: {htpasswd: {realm: dcs-demo, path: $dir/htpasswd}}
EOF
  setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
  for _ in $(seq 30); do
    [ "$(registry_status)" = 401 ] && return 0
    sleep 0.5
  done
  tail -n 20 "$dir/registry.log" >&2
  echo "demo: the registry on $REGISTRY did not start (log: $dir/registry.log)" >&2
  exit 1
}

step "A registry with basic auth on $REGISTRY (user $REGISTRY_USER, password in $WORK/registry/password)"
start_registry

step "The DCS base image (Debian + JDK + /databricks/python3)"
bash scripts/make-base-image.sh "$BASE_IMAGE"

step "The notebook: $EXAMPLES/quickstart.ipynb (working copy in $WORK)"
mkdir -p "$WORK"
cp "$EXAMPLES/quickstart.ipynb" "$EXAMPLES/cluster.json" "$WORK/"
cd "$WORK"
export DCS_VAR_base_image="$BASE_IMAGE"  # the notebook's parameter; its default is on Docker Hub
dcs render quickstart.ipynb
# The notebook's pip packages, downloaded on the host: the build itself needs no network.
python3 -m pip download --quiet --only-binary=:all: \
    -r dcs-build/quickstart/requirements.txt -d dcs-build/quickstart/wheels

step "Build, then push to $REGISTRY (credentials from \$DCS_REGISTRY_PASSWORD, never on a command line)"
PINNED="$(dcs build quickstart.ipynb -t "$IMAGE" --push \
          --username "$REGISTRY_USER" --password-env DCS_REGISTRY_PASSWORD)"
echo "pushed: $PINNED" >&2

step "Check $IMAGE against the DCS requirements (15.4 LTS line)"
dcs check "$IMAGE" --runtime 15.4

step "Store the registry password as the secret dcs-quickstart/registry-password (stdin, never an argument)"
printf %s "$DCS_REGISTRY_PASSWORD" | dcs secrets put --local --create-scope dcs-quickstart registry-password

step "Launch on the local preflight workspace (cluster.json's {{secrets/dcs-quickstart/registry-password}}"
echo "    resolves from the local secret store here, from the secret scope on Databricks)" >&2
CLUSTER_ID="$(dcs launch --spec cluster.json --lock quickstart.ipynb --local --wait)"

if [ "${DCS_DEMO_KEEP:-}" = 1 ]; then
  step "Cluster $CLUSTER_ID is RUNNING; stop it with: dcs terminate $CLUSTER_ID --local"
else
  step "Cluster $CLUSTER_ID reached RUNNING; terminating it (DCS_DEMO_KEEP=1 keeps it)"
  dcs terminate "$CLUSTER_ID" --local
fi
echo "The lock file $WORK/quickstart.dcs.lock.json records the Dockerfile, base digest, pushed digest and cluster JSON." >&2

ENV_FILE="$WORK/examples.env"
step "The examples' settings: $ENV_FILE"
cat >"$ENV_FILE" <<EOF
# Settings for the notebooks in examples/ on this machine (written by scripts/demo.sh):
#   source $ENV_FILE && jupyter lab examples/
export DCS_EXAMPLE_BASE=$BASE_IMAGE
export DCS_EXAMPLE_OS_BASE=$OS_BASE
export DCS_EXAMPLE_REGISTRY=$REGISTRY
export DCS_EXAMPLE_REGISTRY_USER=$REGISTRY_USER
# The password stays in its file; the notebooks only name the variable (--password-env).
DCS_EXAMPLE_REGISTRY_PASSWORD="\$(cat $WORK/registry/password)"
export DCS_EXAMPLE_REGISTRY_PASSWORD
# {{secrets/dcs-examples/registry-password}}: each notebook's push stores the password into the local
# preflight workspace's secret store (%dcs_push ... --secret-ref dcs-examples/registry-password
# --store-secret --local; parameters.ipynb: dcs secrets put --local), where its launch resolves it.
EOF

if [ "${DCS_DEMO_EXAMPLES:-1}" != 0 ]; then
  step "Every example, top to bottom (as Run All), executed copies in $WORK/examples"
  rm -rf "${WORK:?}/examples"
  cp -r "$EXAMPLES" "$WORK/examples"
  rm -rf "$WORK/examples/dcs-build" "$WORK/examples/"*.dcs.lock.json
  # shellcheck disable=SC1090
  (source "$ENV_FILE" && cd "$WORK/examples" && python3 - <<'PY'
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

failed = []
for path in sorted(Path(".").glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    print(f"    {path} ...", file=sys.stderr, flush=True)
    try:
        NotebookClient(nb, kernel_name="python3", timeout=900).execute()
    except Exception as exc:  # report every notebook, then fail
        failed.append(f"{path}: {getattr(exc, 'ename', type(exc).__name__)}: "
                      f"{getattr(exc, 'evalue', exc)}")
    nbformat.write(nb, path)
for line in failed:
    print(f"demo: {line}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
  )
fi
step "Run them in JupyterLab: source $ENV_FILE && jupyter lab $EXAMPLES"
