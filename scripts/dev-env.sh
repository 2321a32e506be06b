#!/usr/bin/env bash
# Development environment for dcs-magic on Debian bookworm, run as root. Safe to re-run:
# every step checks first and only does what is missing.
#
#   bash scripts/dev-env.sh deps      system packages (when missing) + pip install -e '.[test]'
#   bash scripts/dev-env.sh services  start dockerd unless the Docker engine answers
#   bash scripts/dev-env.sh test [PYTEST ARGS]   deps + services + the test suite
#   bash scripts/dev-env.sh demo      deps + services + the main job end to end (scripts/demo.sh)
#
# Environment: PYTHON (default python3), DOCKERD_LOG (default /tmp/dockerd.log).
# Registries are not started here: the test fixtures start their own on 127.0.0.1, and
# scripts/demo.sh starts the demo's.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker.io docker-registry busybox-static apache2-utils debootstrap chromium time openssh-server iproute2)
PYTHON="${PYTHON:-python3}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKER_WAIT_S=60
# The README's test command (keep the two in sync).
TEST_CMD=(-m pytest -q --durations=15)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dev-env: %s\n' "$*" >&2; exit 1; }

apt_install() {  # install those of the given packages that are missing; apt-get update once
  local pkg missing=()
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "root is needed to install: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

use_python() {  # sets PY; Debian's own python3 refuses pip (PEP 668), so use a .venv then
  command -v "$PYTHON" >/dev/null || apt_install python3 python3-venv
  if [ -x .venv/bin/python ]; then
    PY="$PWD/.venv/bin/python"
  elif "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(sys.prefix == sys.base_prefix and os.path.exists(
    os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    PY="$(command -v "$PYTHON")"
  else
    apt_install python3-venv
    log "creating .venv ($PYTHON is managed by Debian)"
    "$PYTHON" -m venv .venv
    PY="$PWD/.venv/bin/python"
  fi
  # Console scripts (dcs, jupyter) live next to the interpreter's packages.
  PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
}

deps() {
  apt_install "${APT_PACKAGES[@]}"
  use_python
  # Editable: the tests, the `dcs` command and Jupyter kernels all run the checkout's code.
  log "pip install -e '.[test]' ($PY)"
  "$PY" -m pip install -q --root-user-action=ignore -e '.[test]'
}

engine_up() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

services() {
  engine_up && return 0
  command -v dockerd >/dev/null || die "dockerd is missing: run 'bash scripts/dev-env.sh deps'"
  log "starting dockerd (log: $DOCKERD_LOG)"
  setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq "$DOCKER_WAIT_S"); do
    engine_up && return 0
    sleep 1
  done
  tail -n 20 "$DOCKERD_LOG" >&2
  die "the Docker engine did not answer within ${DOCKER_WAIT_S}s (log: $DOCKERD_LOG)"
}

# The suite runs against the newest databricks-sdk pip installed; the workspace client's
# tests also run against the OLDEST one pyproject.toml allows (databricks-sdk>=X), installed
# into a throwaway --target directory put first on PYTHONPATH (about 20 s).
OLDEST_SDK_TESTS=(tests/integration/test_workspace.py)

oldest_sdk_tests() {
  local oldest target
  oldest="$(sed -n 's/^ *"databricks-sdk>=\([0-9][0-9.]*\),.*/\1/p' pyproject.toml)"
  [ -n "$oldest" ] || die "pyproject.toml declares no databricks-sdk>=X,<Y range"
  target="${TMPDIR:-/tmp}/dcs-magic-databricks-sdk-$oldest"
  if [ ! -d "$target/databricks/sdk" ]; then
    log "pip install databricks-sdk==$oldest (oldest supported) into $target"
    rm -rf "$target"
    "$PY" -m pip install -q --root-user-action=ignore --no-deps --target "$target" "databricks-sdk==$oldest"
  fi
  PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "import databricks.sdk.version as v, sys
sys.exit(0 if v.__version__ == '$oldest' else 'the oldest-SDK run imports databricks-sdk ' + v.__version__)" || return 1
  log "workspace client tests against databricks-sdk $oldest"
  PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -q -p no:cacheprovider "${OLDEST_SDK_TESTS[@]}"
}

static_checks() {  # ruff on the package, tests and benchmarks, mypy on the package (pyproject.toml): zero findings
  log "ruff check dcs_magic tests benchmarks"
  "$PY" -m ruff check dcs_magic tests benchmarks
  log "mypy --strict (strict = true in pyproject.toml; packages = dcs_magic)"
  "$PY" -m mypy
}

run_tests() {
  deps
  services
  [ -n "$(find tests -name 'test_*.py' -print -quit)" ] || die "no test files under tests/"
  local rc=0
  if [ "$#" -gt 0 ]; then  # a chosen part: one pytest run
    "$PY" "${TEST_CMD[@]}" "$@" || rc=$?
    [ "$rc" -ne 5 ] || die "pytest collected no tests (exit status 5)"
    return "$rc"
  fi
  # The realistic base (debootstrap + apt: minutes on a fresh machine) builds in the background
  # while the lanes start; the engine lane runs the tests that do not need it first
  # (tests/conftest.py), and its fixture waits on the script's lock for the rest.
  local base_log base_pid
  base_log="$(mktemp "${TMPDIR:-/tmp}/dcs-base-image.XXXXXX")"
  log "building the realistic base image in the background (when missing): $base_log"
  bash scripts/make-base-image.sh >"$base_log" 2>&1 </dev/null &
  base_pid=$!
  # The full run (CI): two lanes at once on this machine's cores (tests/conftest.py, LANES).
  # Beside the engine lane (Docker, registries, JupyterLab + Chromium) runs the engine-free lane:
  # lint and types, the oldest supported SDK, then the unit and magics tests that use no engine.
  local fast_log fast_pid fast_rc=0
  fast_log="$(mktemp "${TMPDIR:-/tmp}/dcs-engine-free-lane.XXXXXX")"
  log "engine-free lane (lint, types, oldest SDK, engine-free tests) in the background: $fast_log"
  (
    lane_rc=0
    static_checks || lane_rc=1
    oldest_sdk_tests || lane_rc=1
    DCS_TEST_LANE=engine-free "$PY" "${TEST_CMD[@]}" -p no:cacheprovider || lane_rc=1
    exit "$lane_rc"
  ) >"$fast_log" 2>&1 &
  fast_pid=$!
  log "engine lane"
  DCS_TEST_LANE=engine "$PY" "${TEST_CMD[@]}" || rc=$?
  wait "$fast_pid" || fast_rc=$?
  wait "$base_pid" || true  # done long ago; its failure, if any, failed the tests that need it
  rm -f "$base_log"
  log "engine-free lane output:"
  cat "$fast_log"
  rm -f "$fast_log"
  [ "$rc" -ne 5 ] || die "pytest collected no tests in the engine lane (exit status 5)"
  log "engine lane: exit $rc; engine-free lane: exit $fast_rc"
  [ "$rc" -eq 0 ] && [ "$fast_rc" -eq 0 ]
}

demo() {
  deps
  services
  bash scripts/demo.sh
}

case "${1:-}" in
  deps) deps ;;
  services) services ;;
  test) shift; run_tests "$@" ;;
  demo) demo ;;
  *) die "usage: bash scripts/dev-env.sh deps|services|test [pytest args]|demo" ;;
esac
