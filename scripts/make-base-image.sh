#!/usr/bin/env bash
# make-base-image.sh [TAG]
#
# Builds a from-scratch Databricks Container Services base image that meets the
# DCS requirements (dcs-facts.md): Debian bookworm, JDK 17 as `java`, bash,
# iproute2, coreutils, procps, sudo, and a virtualenv at /databricks/python3
# (Python 3.11, the 15.4 LTS line) with ipython, ipykernel, numpy, pandas,
# pyarrow, six and virtualenv importable.
#
# Why from scratch: Docker Hub (databricksruntime/*) is not reachable on every
# machine, while Debian's mirror is. PyPI is reachable from the host only, so the
# pyarrow wheel (not packaged in bookworm) is downloaded here and COPYed in.
#
# Idempotent: when TAG already exists nothing is built. Concurrent runs are
# serialised with a lock file so parallel test sessions do not build twice.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
#              PYARROW_VERSION (default 17.0.0), DOCKER (default: /usr/bin/docker
#              when present, the classic builder is forced with DOCKER_BUILDKIT=0).
set -euo pipefail

TAG="${1:-dcs-magic/dcs-base:bookworm}"
ROOT_TAG="${TAG}-root"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYARROW_VERSION="${PYARROW_VERSION:-17.0.0}"
if [[ -z "${DOCKER:-}" ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER_BUILDKIT=0

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

say_from_scratch() {
    echo "Docker Hub's databricksruntime images are not reachable here; built a from-scratch base ${TAG} that meets the DCS requirements"
}

# One build at a time per machine; the second caller waits and then finds TAG.
LOCK="${TMPDIR:-/tmp}/dcs-make-base-image.lock"
exec 9>"$LOCK"
flock 9

if image_exists "$TAG"; then
    echo "Docker Hub's databricksruntime images are not reachable here; reusing the from-scratch base ${TAG} (already built) that meets the DCS requirements"
    exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dcs-base.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

if image_exists "$ROOT_TAG"; then
    echo "Reusing root filesystem image ${ROOT_TAG}."
else
    echo "==> debootstrap bookworm (minbase) from ${MIRROR}"
    # Virtual packages are not resolved by debootstrap: the Python packages are
    # installed with apt-get in the Dockerfile below instead.
    debootstrap --variant=minbase \
        --include=openjdk-17-jre-headless,iproute2,procps,sudo,python3-venv,bash,coreutils \
        bookworm "$WORK/root" "$MIRROR"
    # Keep the image small: package caches are not needed at runtime.
    rm -rf "$WORK/root/var/cache/apt/archives/"*.deb "$WORK/root/var/lib/apt/lists/"*
    echo "==> docker import ${ROOT_TAG}"
    tar -C "$WORK/root" -c . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        - "$ROOT_TAG"
    rm -rf "$WORK/root"
fi

echo "==> pip download pyarrow==${PYARROW_VERSION} (manylinux, cp311, x86_64) on the host"
mkdir -p "$WORK/ctx"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --dest "$WORK/ctx" "pyarrow==${PYARROW_VERSION}"
WHEELS=("$WORK"/ctx/pyarrow-*.whl)
WHEEL="$(basename "${WHEELS[0]}")"

cat >"$WORK/ctx/Dockerfile" <<EOF
FROM ${ROOT_TAG}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      python3-numpy python3-pandas ipython3 python3-ipykernel python3-virtualenv python3-six \\
 && rm -rf /var/lib/apt/lists/*
# The Databricks virtualenv; system site-packages give it the apt-installed set.
RUN python3 -m venv --system-site-packages /databricks/python3
COPY ${WHEEL} /tmp/${WHEEL}
RUN /databricks/python3/bin/pip install --no-index --no-cache-dir /tmp/${WHEEL} \\
 && rm /tmp/${WHEEL}
ENV PYSPARK_PYTHON=/databricks/python3/bin/python3
LABEL dcs_magic.base="from-scratch debootstrap bookworm"
EOF

echo "==> docker build ${TAG} (classic builder)"
"$DOCKER" build --tag "$TAG" "$WORK/ctx"
say_from_scratch
