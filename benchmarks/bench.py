"""dcs-magic against its baselines, in one run: a table of ratios (median and min-max).

    python benchmarks/bench.py [--reps 5] [--quick] [--only CASE ...] [--json FILE]

Each case runs both sides (dcs-magic and its baseline: the Debian docker CLI, raw docker-py,
`python -c pass`, ...) interleaved, alternating which goes first, `--reps` times (5 by
default), and reports the median and min-max of each side and the ratio of medians
(dcs / baseline: below 1 means dcs-magic was faster or smaller). Nothing here asserts a
time; the "target" column says what issue 12 aims for, and "ok" whether this run met it.

Peak memory: every measured command runs under GNU time (`/usr/bin/time -f %M`), a small C
process that forks the command. Measuring from this (large) Python process with `os.wait4`
is wrong on Linux: the child inherits the parent's high-water mark across fork/vfork+exec.

Needs the test suite's real parts: a Docker engine, `docker-registry`, `busybox-static`
(`bash scripts/dev-env.sh deps services`). Objects are named `dcs-bench...` (never
`dcs-test`, so a test session's cleanup cannot remove them) and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test helpers start registries and import busybox

import docker  # noqa: E402
from support.images import busybox_rootfs_tar  # noqa: E402
from support.registry import start_registry  # noqa: E402

PREFIX = "dcs-bench"
BASE = f"{PREFIX}/busybox:1"
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
TIME = "/usr/bin/time"
PY = sys.executable


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float
    rss_mib: float
    cpu_s: float = 0.0  # user + system CPU seconds of the command (GNU time's %U + %S)
    inner_s: float | None = None  # what the child reports as its own last line (call time)
    extra: dict[str, float] = field(default_factory=dict)


def run(argv: list[str], *, env: dict[str, str] | None = None, inner: bool = False) -> Sample:
    """Run argv to completion under GNU time: wall time, peak RSS of the command alone.

    Python children may write bytecode caches (PYTHONDONTWRITEBYTECODE is dropped): an
    installed wheel has its .pyc files, as IPython's and docker-py's have here, so a
    checkout that recompiles every module on each start would be measured unfairly.
    """
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.NamedTemporaryFile("w+") as rss, tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M %U %S", "-o", rss.name, *argv], stdout=out,
                              stderr=subprocess.STDOUT, env=env, check=False)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{text[-2000:]}")
        kib, user, system = (float(x) for x in rss.read().strip().splitlines()[-1].split())
    sample = Sample(wall, kib / 1024, user + system)
    if inner:
        last = (text.strip().splitlines() or ["nan"])[-1]
        try:
            values = json.loads(last)
        except ValueError:
            values = {"inner_s": float("nan")}
        sample.inner_s = values.pop("inner_s", None)
        sample.extra.update(values)
    return sample


@dataclass
class Result:
    case: str
    metric: str  # wall_s | inner_s | rss_mib | ...
    ours: list[float]
    base: list[float]
    baseline: str
    target: float | None = None  # ratio target (<=)
    note: str = ""

    @property
    def ratio(self) -> float:
        b = statistics.median(self.base)
        return statistics.median(self.ours) / b if b else float("nan")

    @property
    def ok(self) -> str:
        if self.target is None:
            return ""
        return "yes" if self.ratio <= self.target else "NO"


def interleave(reps: int, sides: dict[str, Callable[[int], Sample]], *, settle: str = ""
               ) -> dict[str, list[Sample]]:
    """Each side `reps` times, alternating which runs first (no order bias). SETTLE, before each
    run: "sync" (the previous run's writes reach the disk first) or "drop" (`settle_caches`)."""
    names = list(sides)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for i in range(reps):
        for name in names if i % 2 == 0 else list(reversed(names)):
            if settle:
                settle_caches(drop=settle == "drop")
            samples[name].append(sides[name](i))
    return samples


def settle_caches(drop: bool = True) -> None:
    """`sync`, then (DROP) the kernel's page, dentry and inode caches (root only; else just sync).
    For the many-small-files case: each build untars 100,000 files in the engine and deletes
    them, and without this the next build's untar took 1-3x as long as the one before
    (measured here: 28 s, then 57, 82, 92, 100 s for the same build), whichever side ran."""
    subprocess.run(["sync"], check=False)
    if not drop:
        return
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as handle:
            handle.write("3\n")
    except OSError:
        pass


def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def table(results: list[Result]) -> str:
    rows = [("case", "metric", "dcs-magic med [min-max]", "baseline", "baseline med [min-max]",
             "ratio", "target", "ok")]
    for r in results:
        rows.append((r.case, r.metric, _spread(r.ours), r.baseline, _spread(r.base),
                     f"{r.ratio:.2f}", f"<= {r.target:g}" if r.target is not None else "", r.ok))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"- {r.case}: {r.note}" for r in results if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


# -- fixtures ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client = docker.from_env(version="auto")
        self.made: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="dcs-bench-"))
        self.registry: Any = None
        self.base = self._ensure_base()

    def _ensure_base(self) -> str:
        try:
            self.client.images.get(BASE)
        except docker.errors.ImageNotFound:
            repository, _, tag = BASE.rpartition(":")
            self.client.api.import_image_from_data(busybox_rootfs_tar(), repository=repository, tag=tag,
                                                   changes=['CMD ["sh"]'])
        return BASE

    def registry_host(self) -> str:
        if self.registry is None:
            directory = self.tmp / "registry"
            directory.mkdir()
            self.registry = start_registry(directory)
        return str(self.registry.host)

    def context(self, name: str, dockerfile: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "Dockerfile").write_text(dockerfile.replace("{base}", self.base))
        return path

    def tag(self, name: str) -> str:
        ref = f"{PREFIX}-{name}:{secrets.token_hex(3)}"
        self.made.append(ref)
        return ref

    def close(self) -> None:
        for ref in self.made:
            try:
                self.client.images.remove(ref, force=True)
            except docker.errors.APIError:
                pass
        if self.registry is not None:
            self.registry.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# The children print one JSON line last: {"inner_s": seconds inside the call, ...}.
# Imports come before the clock starts on every side (in a notebook they are paid once per
# kernel, and the raw docker-py side imports docker first too): dcs-magic imports its engine
# adapter (docker, requests) lazily, on the first build, so the children import it up front.
DCS_BUILD = """
import json, sys, time, dcs_magic, dcs_magic.adapters.engine, dcs_magic.ops.build
from dcs_magic.jupyter.widgets import ProgressWidget
sink = ProgressWidget()
started = time.perf_counter()
result = dcs_magic.build(sys.argv[1], tags=[sys.argv[2]], no_cache=sys.argv[3] == "1", progress=sink,
                         builder=sys.argv[4] if len(sys.argv) > 4 else "auto")
assert result.builder == (sys.argv[4] if len(sys.argv) > 4 else result.builder), result.builder
print(json.dumps({"inner_s": time.perf_counter() - started}))
"""
RAW_BUILD = """
import json, sys, time, docker
api = docker.APIClient(version="auto")
started = time.perf_counter()
for _ in api.build(path=sys.argv[1], tag=sys.argv[2], nocache=sys.argv[3] == "1", rm=True, decode=True):
    pass
print(json.dumps({"inner_s": time.perf_counter() - started}))
"""
DCS_PUSH = """
import json, sys, time, dcs_magic, dcs_magic.adapters.engine, dcs_magic.ops.push
from dcs_magic.jupyter.widgets import ProgressWidget
sink = ProgressWidget(kind="push")
started = time.perf_counter()
dcs_magic.push(sys.argv[1], progress=sink)
print(json.dumps({"inner_s": time.perf_counter() - started}))
"""
DCS_CHECK = """
import json, sys, time, dcs_magic, dcs_magic.adapters.engine, dcs_magic.ops.check
started = time.perf_counter()
dcs_magic.check(sys.argv[1])
print(json.dumps({"inner_s": time.perf_counter() - started}))
"""


def _consume(events: Any) -> None:
    """docker-py's build returns a lazy stream: the build happens while it is read."""
    for _ in events:
        pass


def _steps(n: int) -> str:
    return "FROM {base}\n" + "".join(f"RUN echo step {i} > /step-{i}\n" for i in range(n))


# -- cases -------------------------------------------------------------------------------


def case_build(b: Bench, name: str, dockerfile: str, *, no_cache: bool = True,
               prepare: Callable[[Path], None] | None = None, target: float = 1.05,
               raw: bool = True, engine_env: dict[str, str] | None = None, cpu: bool = False,
               builder: str = "classic", settle: str = "") -> list[Result]:
    """ENGINE_ENV: the engine both sides build on (DOCKER_HOST, TLS settings), else the local one.
    BUILDER: `classic` (docker-py; the CLI with DOCKER_BUILDKIT=0) or `buildkit` (dcs-magic's
    BuildKit builder, the CLI with DOCKER_BUILDKIT=1 --progress=plain, which is what it runs)."""
    ctx = b.context(name, dockerfile)
    if prepare:
        prepare(ctx)
    flag = "1" if no_cache else "0"
    ours = {**os.environ, **(engine_env or {})}
    buildkit = builder == "buildkit"
    env = {**ours, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
    cli_flags = ["--progress=plain"] if buildkit else []
    cli_name = "DOCKER_BUILDKIT=1 docker build" if buildkit else "docker build"
    if not no_cache:  # warm the cache once, untimed
        run([DOCKER_CLI, "build", *cli_flags, "-t", b.tag(name + "-warm"), str(ctx)], env=env)
    sides: dict[str, Callable[[int], Sample]] = {
        "dcs": lambda i: run([PY, "-c", DCS_BUILD, str(ctx), b.tag(name), flag, builder], env=ours, inner=True),
        # Not `-q`: that asks the engine (q=1) to leave the steps' output out of the stream,
        # while dcs-magic and raw docker-py receive and read all of it.
        "cli": lambda i: run([DOCKER_CLI, "build", *cli_flags, *(["--no-cache"] if no_cache else []),
                              "-t", b.tag(name + "-cli"), str(ctx)], env=env),
    }
    if raw:
        sides["raw"] = lambda i: run([PY, "-c", RAW_BUILD, str(ctx), b.tag(name + "-raw"), flag], env=ours,
                                     inner=True)
    s = interleave(b.args.reps, sides, settle=settle)
    results = [
        Result(name, "wall_s", [x.wall_s for x in s["dcs"]], [x.wall_s for x in s["cli"]], cli_name),
        Result(name, "call_s", [x.inner_s or 0 for x in s["dcs"]], [x.wall_s for x in s["cli"]],
               cli_name, target, "call_s = time inside build(), imports excluded"),
        Result(name, "rss_mib", [x.rss_mib for x in s["dcs"]], [x.rss_mib for x in s["cli"]], cli_name),
    ]
    if cpu:  # the client's own work, whatever the engine and the machine's load do to wall time
        results.append(Result(name, "cpu_s", [x.cpu_s for x in s["dcs"]], [x.cpu_s for x in s["cli"]],
                              cli_name, None, "cpu_s = user+system CPU of the whole client "
                              "process (dcs-magic's includes its imports)"))
    if raw:
        results.append(Result(name, "call_s", [x.inner_s or 0 for x in s["dcs"]],
                              [x.inner_s or 0 for x in s["raw"]], "raw docker-py", target))
        results.append(Result(name, "rss_mib", [x.rss_mib for x in s["dcs"]],
                              [x.rss_mib for x in s["raw"]], "raw docker-py",
                              None, "memory flat in context size" if "context" in name else ""))
    return results


def _big_context(total_mb: int, files: int) -> Callable[[Path], None]:
    def prepare(ctx: Path) -> None:
        per_file = max(1, total_mb * 1024 * 1024 // files)
        block = os.urandom(min(per_file, 1 << 20))
        for i in range(files):
            directory = ctx / "data" / f"{i // 500:03d}"
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / f"f{i}.bin", "wb") as handle:
                left = per_file
                while left > 0:
                    handle.write(block[:left])
                    left -= len(block)
    return prepare


def _small_files(files: int, size: int = 1024) -> Callable[[Path], None]:
    """FILES files of SIZE bytes, 500 to a directory (as `_big_context` lays them out)."""
    def prepare(ctx: Path) -> None:
        block = os.urandom(size)
        for i in range(files):
            directory = ctx / "data" / f"{i // 500:04d}"
            if i % 500 == 0:
                directory.mkdir(parents=True, exist_ok=True)
            with open(directory / f"f{i}.txt", "wb") as handle:
                handle.write(block)
    return prepare


def case_many_files(b: Bench) -> list[Result]:
    """A context of many small files (issue 25.5): time against `docker build`, and peak RSS at
    two file counts, to show it does not grow with the number of files."""
    large = b.args.many_files or (10_000 if b.args.quick else 100_000)
    small = max(1, large // 5)

    def label(files: int) -> str:
        return f"build-{files // 1000}k-files" if files % 1000 == 0 else f"build-{files}-files"

    dockerfile = "FROM {base}\nCOPY Dockerfile /Dockerfile\n"
    out = []
    for files in (small, large):
        rows = case_build(b, label(files), dockerfile, prepare=_small_files(files), raw=False, cpu=True,
                          settle="drop")
        shutil.rmtree(b.tmp / label(files), ignore_errors=True)
        if files == large:
            out.extend(rows)
        else:  # the smaller context: its memory, for the flatness
            out.extend(r for r in rows if r.metric in ("rss_mib", "cpu_s"))
    ours = {r.case: statistics.median(r.ours) for r in out if r.metric == "rss_mib"}
    cli = {r.case: statistics.median(r.base) for r in out if r.metric == "rss_mib"}
    keys = [label(small), label(large)]
    out.append(Result(f"files {small:,} -> {large:,}", "rss growth MiB",
                      [ours[keys[1]] - ours[keys[0]]], [cli[keys[1]] - cli[keys[0]]], "docker build's growth",
                      None, f"peak RSS at {large:,} files minus at {small:,} (1 KiB files); 0 = flat"))
    return out


def case_remote(b: Bench) -> list[Result]:
    """Builds on a second dockerd behind TLS on 127.0.0.1 (tests/support/remote_engine.py:
    openssl-made CA, server and client certificates; client certificates required), both sides
    told where it is by DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH."""
    from support import remote_engine

    folder = b.tmp / "remote"
    folder.mkdir()
    engine = remote_engine.start_second_engine(folder, remote_engine.make_certs(folder / "certs"),
                                               namespace="dcs-bench-remote")
    try:
        client = engine.client()
        client.api.import_image_from_data(busybox_rootfs_tar(), repository=BASE.rpartition(":")[0],
                                          tag=BASE.rpartition(":")[2], changes=['CMD ["sh"]'])
        client.close()
        env = {"DOCKER_HOST": engine.tcp_host, "DOCKER_TLS_VERIFY": "1",
               "DOCKER_CERT_PATH": str(engine.certs.client_dir)}
        env.pop("DOCKER_CONTEXT", None)
        mb = 50 if b.args.quick else 200
        files = 2_000
        rows = case_build(b, "remote-tls-build-30", _steps(30), raw=False, engine_env=env)
        rows += case_build(b, f"remote-tls-context-{mb}mb", "FROM {base}\nCOPY Dockerfile /Dockerfile\n",
                           prepare=_big_context(mb, files), raw=False, engine_env=env)
    finally:
        engine.stop()
    for r in rows:
        r.baseline = "docker build (same TLS engine)"
    return rows


# The cache-mount case: pip installs from a local index served at a stated bandwidth
# (benchmarks/wheel_index.py); PyPI is not reachable from containers here.
PIP_RATE = 10 * 1000 * 1000  # bytes/s per download: 80 Mbit/s, a good office line to PyPI
# Made-up wheels the size of a data-science stack's (MiB): torch (CPU), pyarrow, scipy, numpy,
# scikit-learn, pandas, matplotlib, and a small one; ~320 MiB in all.
PIP_STACK = {"dcsbench-torch": 190, "dcsbench-pyarrow": 40, "dcsbench-scipy": 38, "dcsbench-numpy": 18,
             "dcsbench-sklearn": 13, "dcsbench-pandas": 12, "dcsbench-matplotlib": 8, "dcsbench-six": 1}
PIP_INSTALL = ("/databricks/python3/bin/pip install --disable-pip-version-check --no-input --progress-bar off "
               "--index-url {url} --trusted-host {host} -r /tmp/requirements.txt")
PIP_DOCKERFILES = {
    # The classic builder cannot mount a cache: the usual Dockerfile keeps no pip cache in the image.
    "classic": "FROM {image}\nCOPY requirements.txt /tmp/requirements.txt\nRUN {pip} --no-cache-dir\n",
    "buildkit": "FROM {image}\nCOPY requirements.txt /tmp/requirements.txt\n"
                "RUN --mount=type=cache,target=/root/.cache/pip {pip}\n",
}


def bridge_gateway(client: Any) -> str:
    """The default bridge's gateway address: IPAM's `Gateway`, which a fresh engine may leave
    out (then the engine uses the subnet's first address, as docker0 shows)."""
    import ipaddress

    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def case_cache_mount(b: Bench) -> list[Result]:
    """A rebuild after one requirement changed (issue 25.6): BuildKit with a pip cache mount
    against the classic builder's rebuild (which downloads every wheel again), and dcs-magic's
    BuildKit build against `DOCKER_BUILDKIT=1 docker build` of the same Dockerfile."""
    from wheel_index import WheelIndex, make_wheels

    image = os.environ.get("DCS_BENCH_IMAGE", "dcs-magic/dcs-base:bookworm")
    try:
        b.client.images.get(image)
    except docker.errors.ImageNotFound:
        return [Result("cache-mount rebuild", "skipped", [0.0], [1.0], f"{image} missing: run scripts/make-base-image.sh")]
    reps = b.args.reps
    scale = 0.1 if b.args.quick else 1.0
    wheels = b.tmp / "wheels"
    for name, mib in PIP_STACK.items():
        make_wheels(wheels, [name], int(mib * scale * (1 << 20)))
    # The requirement that changes: a new version of a 1 MiB package for every build, so no
    # side ever finds the changed step in its layer cache.
    versions = [f"1.{n}" for n in range(4 * reps + 3)]
    make_wheels(wheels, ["dcsbench-changing"], 1 << 20, versions)
    gateway = bridge_gateway(b.client)
    index = WheelIndex(wheels, gateway, PIP_RATE)
    pip = PIP_INSTALL.format(url=index.url, host=gateway)
    contexts = {side: b.context(f"cache-mount-{side}", PIP_DOCKERFILES["classic" if side == "classic" else "buildkit"]
                                .replace("{image}", image).replace("{pip}", pip))
                for side in ("classic", "buildkit", "cli")}
    fresh = iter(versions)

    def requirements(side: str) -> Path:
        ctx = contexts[side]
        (ctx / "requirements.txt").write_text("".join(f"{name}==1.0\n" for name in PIP_STACK)
                                              + f"dcsbench-changing=={next(fresh)}\n")
        return ctx

    kit = {**os.environ, "DOCKER_BUILDKIT": "1"}
    try:
        # Untimed first builds: every side starts from a cached base and (BuildKit) a warm pip cache.
        for side in contexts:
            ctx = requirements(side)
            builder = "classic" if side == "classic" else "buildkit"
            run([PY, "-c", DCS_BUILD, str(ctx), b.tag("cache-mount-warm"), "0", builder], inner=True)
        downloaded = index.stats.bytes
        def ours(side: str) -> Callable[[int], Sample]:
            builder = "classic" if side == "classic" else "buildkit"
            return lambda i: run([PY, "-c", DCS_BUILD, str(requirements(side)), b.tag("cache-mount"), "0", builder],
                                 inner=True)

        # Two series, each interleaved and each run after a `sync`: the classic rebuild writes
        # a ~320 MiB layer, and whichever build came right after it paid for its write-back (in
        # one series of three sides, dcs-magic's BuildKit build followed it 3 times of 5, the
        # CLI never).
        s = interleave(reps, {"classic": ours("classic"), "buildkit": ours("buildkit")}, settle="sync")
        s.update(interleave(reps, {
            "buildkit-pair": ours("buildkit"),
            "cli": lambda i: run([DOCKER_CLI, "build", "--progress=plain", "-t", b.tag("cache-mount-cli"),
                                  str(requirements("cli"))], env=kit),
        }, settle="sync"))
        per_rebuild = (index.stats.bytes - downloaded) / (4 * reps) / 1e6
    finally:
        index.close()
    total = sum(PIP_STACK.values()) * scale + 1
    note = (f"{len(PIP_STACK)} wheels the size of torch (CPU), pyarrow, scipy, numpy, ... + the changed one of "
            f"1 MiB (~{total:.0f} MiB) from a local index at {PIP_RATE / 1e6:g} MB/s per download; "
            f"{per_rebuild:.0f} MB fetched per rebuild on average over the three sides; each run after a `sync`")
    call = {side: [x.inner_s or 0 for x in s[side]] for side in ("classic", "buildkit")}
    return [
        Result("cache-mount rebuild", "call_s", call["buildkit"], call["classic"],
               "classic builder's rebuild", 1 / 3, note + "; target: 3x faster (ratio <= 0.33)"),
        Result("cache-mount rebuild", "call_s", [x.inner_s or 0 for x in s["buildkit-pair"]],
               [x.wall_s for x in s["cli"]], "DOCKER_BUILDKIT=1 docker build", 1.05,
               "the same Dockerfile and a warm cache on both sides"),
        Result("cache-mount rebuild", "rss_mib", [x.rss_mib for x in s["buildkit-pair"]], [x.rss_mib for x in s["cli"]],
               "DOCKER_BUILDKIT=1 docker build", None, "dcs-magic's figure: the larger of its Python process "
               "and the docker CLI it runs"),
    ]


def case_push(b: Bench, name: str, layers: int, layer_mb: float, target: float = 1.05) -> list[Result]:
    registry = b.registry_host()
    first: dict[str, list[Sample]] = {"dcs": [], "cli": []}
    again: dict[str, list[Sample]] = {"dcs": [], "cli": []}
    size = int(layer_mb * 1024 * 1024)
    for i in range(b.args.reps):
        for side in ("dcs", "cli") if i % 2 == 0 else ("cli", "dcs"):
            token = secrets.token_hex(4)
            body = "FROM {base}\n" + "".join(
                f"RUN head -c {size} /dev/urandom > /blob-{token}-{n}\n" for n in range(layers))
            ctx = b.context(f"{name}-{token}", body)
            ref = f"{registry}/{PREFIX}-{name}-{side}:{token}"
            _consume(b.client.api.build(path=str(ctx), tag=ref, rm=True))  # untimed: only the push counts
            b.made.append(ref)
            argv = [PY, "-c", DCS_PUSH, ref] if side == "dcs" else [DOCKER_CLI, "push", "-q", ref]
            first[side].append(run(argv, inner=side == "dcs"))
            again[side].append(run(argv, inner=side == "dcs"))
    out = []
    for label, s in ((f"{name} first", first), (f"{name} re-push", again)):
        out.append(Result(label, "wall_s", [x.wall_s for x in s["dcs"]], [x.wall_s for x in s["cli"]],
                          "docker push"))
        out.append(Result(label, "call_s", [x.inner_s or 0 for x in s["dcs"]], [x.wall_s for x in s["cli"]],
                          "docker push", target))
    return out


def case_check(b: Bench) -> list[Result]:
    s = interleave(b.args.reps, {
        "dcs": lambda i: run([PY, "-c", DCS_CHECK, b.base], inner=True),
        "cli": lambda i: run([DOCKER_CLI, "run", "--rm", "--entrypoint", "true", b.base]),
    })
    return [Result("check", "call_s", [x.inner_s or 0 for x in s["dcs"]], [x.wall_s for x in s["cli"]],
                   "docker run --rm IMG true", 1.05, "the probe is one `docker run` plus an inspect")]


def case_startup(b: Bench) -> list[Result]:
    dcs = shutil.which("dcs") or str(Path(PY).parent / "dcs")
    load_ext = ("from IPython.core.interactiveshell import InteractiveShell as S; "
                "from traitlets.config import Config; c = Config(); c.HistoryManager.enabled = False; "
                "ip = S.instance(config=c)")
    s = interleave(b.args.reps, {
        "import": lambda i: run([PY, "-c", "import dcs_magic"]),
        "pass": lambda i: run([PY, "-c", "pass"]),
        "load_ext": lambda i: run([PY, "-c", load_ext + "; ip.run_line_magic('load_ext', 'dcs_magic')"]),
        "ipython": lambda i: run([PY, "-c", load_ext]),
        "dcs": lambda i: run([dcs, "--help"]),
        "docker": lambda i: run([DOCKER_CLI, "--help"]),
    })
    w = {k: [x.wall_s for x in v] for k, v in s.items()}
    return [
        Result("import dcs_magic", "wall_s", w["import"], w["pass"], "python -c pass", 1.05,
               "the package imports nothing heavy until a name needs it"),
        Result("%load_ext", "wall_s", w["load_ext"], w["ipython"], "InteractiveShell alone", 1.05),
        Result("dcs --help", "wall_s", w["dcs"], w["docker"], "docker --help", None,
               "a Python process against a Go binary: the floor is `python -c pass` "
               f"({statistics.median(w['pass']):.2f} s)"),
    ]


def case_reducer(b: Bench) -> list[Result]:
    from dcs_magic.model.progress import BuildState, PushState
    fixtures = REPO / "tests" / "unit" / "fixtures"
    build_events = [json.loads(line) for line in (fixtures / "build_ok.jsonl").read_text().splitlines() if line]
    push_events = [json.loads(line) for line in (fixtures / "push_new.jsonl").read_text().splitlines() if line]
    build_events = [e for e in build_events if "aux" not in e and "error" not in e]
    push_events = [e for e in push_events if "aux" not in e and "error" not in e]
    rates: dict[str, list[float]] = {"build": [], "push": []}
    for _ in range(b.args.reps):
        for kind, events, factory in (("build", build_events, BuildState), ("push", push_events, PushState)):
            state: Any = factory()
            n = 0
            started = time.perf_counter()
            while n < 200_000:
                for event in events:
                    state.apply(event)
                n += len(events)
            rates[kind].append(n / (time.perf_counter() - started))
    return [Result(f"reducer {k}", "events/s", v, [900_000.0] * len(v), "900k events/s (issue 12)",
                   None, "higher is better") for k, v in rates.items()]


# -- kernel traffic ----------------------------------------------------------------------


@contextmanager
def kernel() -> Iterator[Any]:
    from jupyter_client.manager import start_new_kernel
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


# What the kernel sends for every cell whatever it runs: not the widget's traffic.
_CELL_PROTOCOL = ("status", "execute_input")


def _once_per_page(msg: dict) -> bool:
    """The front-end module and the shared Layout: comm_opens sent once per kernel."""
    if msg["msg_type"] != "comm_open":
        return False
    state = msg["content"].get("data", {}).get("state", {})
    return state.get("_model_name") == "LayoutModel" or ("js" in state and "hash" in state)


def traffic(client: Any, code: str, timeout: float = 600) -> dict[str, float]:
    """Run `code`; measure every message the kernel sends the page for it (widget comms,
    displays, the static record), except the cell protocol (status, execute_input).

    `bytes` / `messages` / `largest` / `peak_per_s` are the run's own traffic; the one-time
    per-kernel comm_opens (front-end module, shared Layout) are counted apart (`once_bytes`).
    `peak_per_s` is the most messages in any 1 s window; `per_s` the mean over the run.
    """
    msg_id = client.execute(code)
    sizes: list[int] = []
    times: list[float] = []
    once = 0
    started = time.perf_counter()
    end = None
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"])[-2000:])
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            end = time.perf_counter()
            break
        if kind in _CELL_PROTOCOL:
            continue
        size = len(json.dumps(msg["content"])) + sum(len(b) for b in msg.get("buffers") or [])
        if _once_per_page(msg):
            once += size
            continue
        sizes.append(size)
        times.append(time.perf_counter())
    duration = max((end or time.perf_counter()) - started, 1e-6)
    peak = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    return {"messages": len(sizes), "bytes": sum(sizes), "largest": max(sizes or [0]),
            "per_s": len(sizes) / duration, "peak_per_s": float(peak), "duration_s": duration,
            "once_bytes": once}


def _log_bytes(client: Any) -> int:
    """Size of the last build's log file (`_.log_path`): what the page shows, all of it."""
    reply = client.execute_interactive("", user_expressions={"n": "os.path.getsize(_.log_path)"}, timeout=30)
    return int(reply["content"]["user_expressions"]["n"]["data"]["text/plain"])


TRAFFIC_BUILDS = {
    # name: (Dockerfile, bytes its RUN step prints)
    "drip": ("FROM {base}\nRUN i=0; while [ $i -lt 300 ]; do echo \"pip: collecting package-$i ...\"; "
             "i=$((i+1)); sleep 0.05; done\n", 300 * len("pip: collecting package-000 ...\n")),
    "long-line": ("FROM {base}\nRUN head -c 3000000 /dev/zero | tr '\\0' x\n", 3_000_000),
    "200k-lines": ("FROM {base}\nRUN i=0; while [ $i -lt 200000 ]; do echo \"log line $i\"; i=$((i+1)); done\n",
                   sum(len(f"log line {i}\n") for i in range(200_000))),
}


def case_traffic(b: Bench) -> list[Result]:
    """Per-build traffic against the raw log (the log file: every line the page shows), the
    one-time module as its own row. Ratio = bytes / log bytes; the deltas-only ideal is 1."""
    out: list[Result] = []
    registry = b.registry_host()
    once: list[float] = []
    with kernel() as kc:
        setup = f"import os\nos.chdir({str(b.tmp)!r})\n%load_ext dcs_magic\n%config DcsMagics.progress = 'widget'"
        kc.execute_interactive(setup, timeout=60)
        for name, (dockerfile, _printed) in TRAFFIC_BUILDS.items():
            if b.args.quick and name == "200k-lines":
                continue
            samples = []
            for i in range(max(1, b.args.reps // 2)):
                ctx = b.tmp / f"traffic-{name}-{i}"
                tag = b.tag(f"traffic-{name}")
                cell = (f"%%dockerfile traffic{i} --context {ctx} --quiet\n"
                        + dockerfile.replace("{base}", b.base))
                kc.execute_interactive(cell, timeout=60)
                sample = traffic(kc, f"_ = %dcs_build traffic{i} -t {tag} --no-cache")
                sample["raw"] = _log_bytes(kc)
                samples.append(sample)
                if sample["once_bytes"]:
                    once.append(sample["once_bytes"])
            ratio = [s["bytes"] / s["raw"] for s in samples]
            target = 1.5 if name == "drip" else 0.10 if name == "200k-lines" else None
            out.append(Result(f"traffic {name}", "bytes/raw log", ratio, [1.0] * len(ratio),
                              "deltas-only ideal (= the log file)", target,
                              f"{statistics.median(s['bytes'] for s in samples) / 1024:.1f} KiB for a "
                              f"{statistics.median(s['raw'] for s in samples) / 1024:.1f} KiB log in "
                              f"{statistics.median(s['messages'] for s in samples):.0f} messages; largest "
                              f"{max(s['largest'] for s in samples) / 1024:.1f} KiB (<= 128), peak "
                              f"{max(s['peak_per_s'] for s in samples):.0f} msg/s in 1 s (<= 12), mean "
                              f"{max(s['per_s'] for s in samples):.1f} msg/s"))
        # A 40-layer push.
        token = secrets.token_hex(4)
        body = "FROM {base}\n" + "".join(f"RUN head -c 200000 /dev/urandom > /l{n}\n" for n in range(40))
        ctx = b.context(f"traffic-push-{token}", body)
        ref = f"{registry}/{PREFIX}-traffic:{token}"
        _consume(b.client.api.build(path=str(ctx), tag=ref, rm=True))
        b.made.append(ref)
        s = traffic(kc, f"_ = %dcs_push {ref}")
        out.append(Result("traffic push-40", "bytes", [float(s["bytes"])], [float(40 * 200)],
                          "40 layers x ~200 B of state", None,
                          f"{s['messages']} messages, largest {s['largest'] / 1024:.1f} KiB, peak "
                          f"{s['peak_per_s']:.0f} msg/s in 1 s, mean {s['per_s']:.1f} msg/s"))
    if once:
        out.append(Result("traffic module (once per page)", "bytes", once[:1], once[:1],
                          "itself: the front-end code and shared Layout, sent with a kernel's first widget", None,
                          f"{once[0] / 1024:.1f} KiB, not counted in the per-build rows above"))
    return out


# -- local launch ------------------------------------------------------------------------


def case_launch(b: Bench) -> list[Result]:
    """How late `wait_for_cluster` reports RUNNING after the local workspace reached it."""
    from dcs_magic import ClusterSpec, Workspace
    image = os.environ.get("DCS_BENCH_IMAGE", "dcs-magic/dcs-base:bookworm")
    try:
        b.client.images.get(image)
    except docker.errors.ImageNotFound:
        return [Result("local launch", "skipped", [0.0], [1.0], f"{image} missing: run scripts/make-base-image.sh")]
    registry = b.registry_host()
    ref = f"{registry}/{PREFIX}-launch:1"
    b.client.images.get(image).tag(ref)
    b.made.append(ref)
    for _ in b.client.api.push(ref, stream=True, decode=True):
        pass
    from dcs_magic.ops.check import probe_script

    late: list[float] = []
    ours: list[float] = []
    base: list[float] = []
    same: list[float] = []  # by hand, with the probe dcs-magic runs instead of `java -version; python -V`
    ws = Workspace.local()
    try:
        for i in range(b.args.reps):
            spec = ClusterSpec(cluster_name=f"{PREFIX}-{i}", spark_version="15.4.x-scala2.12",
                               num_workers=0, docker_image={"url": ref})
            started = time.perf_counter()
            cluster_id = ws.create_cluster(spec)
            info = ws.wait_for_cluster(cluster_id, timeout_s=600)
            returned = time.time()
            ours.append(time.perf_counter() - started)
            running_at = _running_time(ws, cluster_id, info)
            late.append(returned - running_at if running_at else float("nan"))
            ws.terminate_cluster(cluster_id)
            # By hand: pull, probe, start a driver container.
            started = time.perf_counter()
            subprocess.run([DOCKER_CLI, "pull", "-q", ref], check=True, capture_output=True)
            subprocess.run([DOCKER_CLI, "run", "--rm", "--entrypoint", "sh", ref, "-c",
                            "java -version; /databricks/python3/bin/python -V"], check=True, capture_output=True)
            name = f"{PREFIX}-driver-{secrets.token_hex(3)}"
            subprocess.run([DOCKER_CLI, "run", "-d", "--name", name, "--entrypoint", "sleep", ref, "600"],
                           check=True, capture_output=True)
            base.append(time.perf_counter() - started)
            subprocess.run([DOCKER_CLI, "rm", "-f", name], check=False, capture_output=True)
            started = time.perf_counter()
            subprocess.run([DOCKER_CLI, "pull", "-q", ref], check=True, capture_output=True)
            subprocess.run([DOCKER_CLI, "run", "--rm", "--network", "none", "--user", "0", "--entrypoint",
                            "/bin/sh", ref, "-c", probe_script()], check=True, capture_output=True)
            subprocess.run([DOCKER_CLI, "run", "-d", "--name", name, "--entrypoint", "sleep", ref, "600"],
                           check=True, capture_output=True)
            same.append(time.perf_counter() - started)
            subprocess.run([DOCKER_CLI, "rm", "-f", name], check=False, capture_output=True)
    finally:
        ws.close()
    return [Result("local launch", "wall_s", ours, base, "pull + probe + run -d by hand", 1.05,
                   f"RUNNING reported {statistics.median(late):.2f} s after the state changed (target <= 0.3)"),
            Result("local launch", "wall_s", ours, same, "the same by hand, with dcs-magic's probe", 1.05,
                   "the probe imports IPython, ipykernel, numpy, pandas, pyarrow, six, virtualenv in the image")]


def _running_time(ws: Any, cluster_id: str, info: dict[str, Any]) -> float | None:
    for event in ws.events(cluster_id, order="ASC"):
        if event.get("type") == "RUNNING":
            return float(event["timestamp"]) / 1000
    ts = info.get("state_changed_time") or info.get("last_state_change_time")
    return float(ts) / 1000 if ts else None


# -- main --------------------------------------------------------------------------------


def cases(b: Bench) -> dict[str, Callable[[], list[Result]]]:
    mb = 50 if b.args.quick else b.args.context_mb
    files = 2_000 if b.args.quick else 20_000
    return {
        "build-30": lambda: case_build(b, "build-30", _steps(30)),
        "build-200k": lambda: case_build(b, "build-200k", TRAFFIC_BUILDS["200k-lines"][0]),
        "build-context": lambda: case_build(b, f"build-context-{mb}mb",
                                            "FROM {base}\nCOPY Dockerfile /Dockerfile\n",
                                            prepare=_big_context(mb, files)),
        "build-cached": lambda: case_build(b, "build-cached", _steps(30), no_cache=False),
        "build-many-files": lambda: case_many_files(b),
        "buildkit-30": lambda: case_build(b, "buildkit-30", _steps(30), raw=False, builder="buildkit"),
        "cache-mount": lambda: case_cache_mount(b),
        "remote": lambda: case_remote(b),
        "push-3": lambda: case_push(b, "push-3", 3, 5 if b.args.quick else 20),
        "push-40": lambda: case_push(b, "push-40", 40, 0.5),
        "check": lambda: case_check(b),
        "launch": lambda: case_launch(b),
        "startup": lambda: case_startup(b),
        "reducer": lambda: case_reducer(b),
        "traffic": lambda: case_traffic(b),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per side and case (default 5)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs (50 MB context, 5 MB layers)")
    parser.add_argument("--context-mb", type=int, default=500, help="size of the big build context")
    parser.add_argument("--many-files", type=int, default=0,
                        help="files in the many-small-files context (default 100,000, --quick 10,000; "
                             "memory also at a fifth of it)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these cases")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers as JSON")
    args = parser.parse_args()
    random.seed(0)
    b = Bench(args)
    results: list[Result] = []
    try:
        for name, fn in cases(b).items():
            if args.only and name not in args.only:
                continue
            print(f"... {name}", file=sys.stderr, flush=True)
            results.extend(fn())
    finally:
        b.close()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"ratio": r.ratio} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
