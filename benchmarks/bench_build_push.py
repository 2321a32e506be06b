"""Build and push with dcs-magic vs Debian's Docker CLI: ratios of wall time and peak RSS.

    python benchmarks/bench_build_push.py [--reps 3] [--docker /usr/bin/docker] [--json FILE]

Every measurement is a fresh child process, timed from spawn to exit, with its peak RSS
from os.wait4 (ru_maxrss of that child alone): `python -c <dcs_magic.build/push>` against
`docker build` / `docker push`. Both sides therefore pay their own start-up (Python imports,
Go runtime). The CLI runs the classic builder (DOCKER_BUILDKIT=0) like docker-py does, and
both build with --no-cache so each repetition really runs the steps. dcs-magic's side sends
its progress to a ProgressWidget (no front-end attached), so snapshots, the throttle and
trait syncs are part of what is measured.

Cases: a small multi-step build, a build whose RUN step prints 20,000 log lines, and a push
of an image with a fresh 20 MB random layer to a local `docker-registry` (a new image per
push, so each push uploads). Reported: median seconds and MiB per side, and dcs / cli ratios
(below 1 means dcs-magic was faster or smaller). Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test helpers start the registry and base image

import docker
from support.images import busybox_rootfs_tar
from support.registry import start_registry

from dcs_magic import __version__
from dcs_magic.pipeline import SHA_LABEL, VERSION_LABEL

PREFIX = "dcs-bench"
# Not the tests' dcs-test/busybox image: that one carries a `dcs-test` label, which every
# container made from it inherits, and test sessions running at the same time remove new
# dcs-test containers (their cleanup sweep), build steps included.
BASE = f"{PREFIX}/busybox:1"

SMALL = """FROM {base}
ENV APP_HOME=/app
RUN mkdir -p /app && echo configured > /app/state
COPY payload.txt /app/payload.txt
RUN for i in 1 2 3 4 5; do echo step $i; done
WORKDIR /app
RUN wc -c /app/payload.txt
"""
FLOOD = """FROM {base}
RUN i=0; while [ $i -lt 20000 ]; do echo "log line $i"; i=$((i+1)); done
"""
LAYER = """FROM {base}
RUN head -c 20000000 /dev/urandom > /blob-{token}
"""

# The children print how long the call itself took (imports excluded) as their last line.
DCS_BUILD = """
import sys, time, dcs_magic
from dcs_magic.widgets import ProgressWidget
sink = ProgressWidget()
started = time.perf_counter()
dcs_magic.build(sys.argv[1], tags=[sys.argv[2]], no_cache=True, progress=sink)
print(time.perf_counter() - started)
"""
DCS_PUSH = """
import sys, time, dcs_magic
from dcs_magic.widgets import ProgressWidget
sink = ProgressWidget(kind="push")
started = time.perf_counter()
dcs_magic.push(sys.argv[1], progress=sink)
print(time.perf_counter() - started)
"""


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run argv to completion: (wall s, peak RSS MiB of that child alone, call s).

    "call s" is the child's own last output line for dcs-magic (the build()/push() call
    without interpreter start-up and imports), the wall time for the CLI.
    """
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}):\n{out.read().decode()[-2000:]}")
        out.seek(0)
        last = (out.read().decode(errors="replace").strip().splitlines() or [""])[-1]
    call = float(last) if argv[0] == sys.executable else wall
    return wall, usage.ru_maxrss / 1024, call  # Linux reports ru_maxrss in KiB


def context(root: Path, name: str, dockerfile: str, **values: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile.format(**values))
    (path / "payload.txt").write_text("x" * 100_000)
    return path


def bench_build(docker_cli: str, ctx: Path, reps: int, made: list[str]) -> dict:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    # The same labels dcs-magic adds (the engine turns each into a LABEL step): same work.
    sha = hashlib.sha256((ctx / "Dockerfile").read_bytes()).hexdigest()
    labels = ["--label", f"{SHA_LABEL}={sha}", "--label", f"{VERSION_LABEL}={__version__}"]
    runs: dict[str, list[tuple[float, float, float]]] = {"dcs": [], "cli": []}
    for i in range(reps):
        for side in ("dcs", "cli") if i % 2 == 0 else ("cli", "dcs"):  # alternate: no order bias
            tag = f"{PREFIX}-{side}-{ctx.name}:{i}"
            made.append(tag)
            if side == "dcs":
                runs[side].append(measure([sys.executable, "-c", DCS_BUILD, str(ctx), tag]))
            else:
                runs[side].append(measure([docker_cli, "build", "--no-cache", *labels, "-t", tag, str(ctx)], env))
    return summarize(runs)


def bench_push(docker_cli: str, client: docker.DockerClient, base: str, registry: str, root: Path,
               reps: int, made: list[str]) -> dict:
    runs: dict[str, list[tuple[float, float, float]]] = {"dcs": [], "cli": []}
    for i in range(reps):
        for side in ("dcs", "cli") if i % 2 == 0 else ("cli", "dcs"):
            token = secrets.token_hex(4)
            ctx = context(root, f"layer-{token}", LAYER, base=base, token=token)
            ref = f"{registry}/{PREFIX}-{side}:{token}"
            client.images.build(path=str(ctx), tag=ref, rm=True)  # untimed: only the push is measured
            made.append(ref)
            if side == "dcs":
                runs[side].append(measure([sys.executable, "-c", DCS_PUSH, ref]))
            else:
                runs[side].append(measure([docker_cli, "push", ref]))
    return summarize(runs)


def summarize(runs: dict[str, list[tuple[float, float, float]]]) -> dict:
    result: dict = {}
    for side, samples in runs.items():
        result[side] = {"wall_s": statistics.median(s[0] for s in samples),
                        "rss_mib": statistics.median(s[1] for s in samples),
                        "call_s": statistics.median(s[2] for s in samples), "n": len(samples)}
    result["ratio"] = {key: result["dcs"][key] / result["cli"][key] for key in ("wall_s", "call_s", "rss_mib")}
    return result


def report(results: dict[str, dict]) -> str:
    header = (f"{'case':<11}{'dcs s':>7}{'call s':>8}{'cli s':>7}{'time ratio':>11}{'call ratio':>11}"
              f"{'dcs MiB':>9}{'cli MiB':>9}{'RSS ratio':>10}")
    lines = [header]
    for case, r in results.items():
        dcs, cli, ratio = r["dcs"], r["cli"], r["ratio"]
        lines.append(f"{case:<11}{dcs['wall_s']:>7.2f}{dcs['call_s']:>8.2f}{cli['wall_s']:>7.2f}"
                     f"{ratio['wall_s']:>11.2f}{ratio['call_s']:>11.2f}"
                     f"{dcs['rss_mib']:>9.1f}{cli['rss_mib']:>9.1f}{ratio['rss_mib']:>10.2f}")
    return "\n".join(lines)


def ensure_base(client: docker.DockerClient) -> str:
    """busybox-static as a one-layer image, imported once and kept for later runs."""
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        repository, _, tag = BASE.rpartition(":")
        client.api.import_image_from_data(busybox_rootfs_tar(), repository=repository, tag=tag,
                                          changes=['CMD ["sh"]'])
    return BASE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per side and case (median reported)")
    parser.add_argument("--docker", default="/usr/bin/docker", help="the Docker CLI to compare with")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    args = parser.parse_args()

    client = docker.from_env(version="auto")
    base = ensure_base(client)
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dcs-bench-") as tmp:
        root = Path(tmp)
        reg_dir = root / "registry"
        reg_dir.mkdir()
        registry = start_registry(reg_dir)
        try:
            results = {
                "build": bench_build(args.docker, context(root, "small", SMALL, base=base), args.reps, made),
                "build-20k": bench_build(args.docker, context(root, "flood", FLOOD, base=base), args.reps, made),
                "push-20MB": bench_push(args.docker, client, base, registry.host, root, args.reps, made),
            }
        finally:
            registry.stop()
            for ref in made:
                try:
                    client.images.remove(ref)
                except docker.errors.APIError:
                    pass
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
