"""`check(image)`: run an image locally and check it against the DCS requirements.

One container is run from the image with its entrypoint replaced by a POSIX `sh` probe
(busybox/Alpine compatible; it does not need bash to find out that bash is missing). The
probe prints `key=value` lines; everything else is pure:

    probe_script() -> str                      the shell script run in the container
    parse_probe(text) -> dict[str, str]        its output as facts
    evaluate(facts, image_attrs, runtime)      facts + `docker image inspect` -> CheckItems

With `parity=True` the probe also prints `pip list --format=json` of /databricks/python3,
the full Python version, LANG / LC_ALL and PYSPARK_PYTHON, and `parity.compare` adds rows
comparing them with the runtime line's official image. Runtime facts come from runtime.py.

The container is run through `engine.Engine.run_container`, which always removes it, also on
errors, timeouts, KeyboardInterrupt and interpreter exit.
Requirements and their reasons: ../shared/dcs-facts.md ("What a custom image must contain").
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from ..errors import EngineError, UsageError
from ..model import runtime as _runtime
from ..model.results import CheckItem, CheckReport
from ..model.runtime import RuntimeLine

if TYPE_CHECKING:  # the engine (and docker) are imported only when a check runs
    from ..adapters.engine import Engine

__all__ = [
    "DATABRICKS_PYTHON",
    "IMAGE_SIZE_WARN_BYTES",
    "OS_ITEMS",
    "REQUIRED_PACKAGES",
    "ProbeRun",
    "check",
    "evaluate",
    "facts_from_run",
    "fitting_runtimes",
    "java_version",
    "parse_probe",
    "parse_runtime",
    "probe_script",
    "report_python",
    "run_probe",
]

DATABRICKS_PYTHON = "/databricks/python3/bin/python3"
"""The interpreter Databricks starts Python notebooks with (PYSPARK_PYTHON)."""

# Import name -> name shown in the report / pip package name.
REQUIRED_PACKAGES: dict[str, str] = {
    "IPython": "ipython",
    "ipykernel": "ipykernel",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "six": "six",
}
_VIRTUALENV = "virtualenv"


# Multi-GB images risk Databricks' container setup timeout: the VM pulls and extracts the
# whole image before the runtime is copied in.
IMAGE_SIZE_WARN_BYTES = 5 * 1000**3

# Items whose failure Databricks reports as DOCKER_INVALID_OS_EXCEPTION at cluster start.
OS_ITEMS = ("os", "architecture")

_PROBE_PYTHON = r"""
import importlib, sys
print("python.version=%d.%d.%d" % tuple(sys.version_info[:3]))
print("python.prefix=%s" % sys.prefix)
for name in sys.argv[1:]:
    try:
        mod = importlib.import_module(name)
        print("pkg.%s=%s" % (name, getattr(mod, "__version__", "") or "installed"))
    except BaseException as exc:
        text = (str(exc).splitlines() or [""])[0]
        print("pkg.%s=!%s: %s" % (name, type(exc).__name__, text))
    sys.stdout.flush()
"""


_PARITY_SH = r"""
emit env.LANG "${LANG:-}"
emit env.LC_ALL "${LC_ALL:-}"
emit env.PYSPARK_PYTHON "${PYSPARK_PYTHON:-}"
if [ -x "$PY" ]; then
  "$PY" -c 'import sys; print(sys.version.splitlines()[0])' 2>&1 | { IFS= read -r l; emit python.full "$l"; }
  # One JSON line on success; anything else (No module named pip) is the reason it failed.
  "$PY" -m pip list --format=json --disable-pip-version-check --no-color 2>&1 \
    | while IFS= read -r l || [ -n "$l" ]; do
        case "$l" in \[*) emit pip.list "$l";; *) emit pip.error "$l";; esac
      done
fi
"""


def probe_script(parity: bool = False) -> str:
    """The POSIX sh script run in the image: prints `key=value` facts, ends with probe.end=1.

    Only shell builtins are relied on (`command -v`, `read`, `case`, `printf`): busybox
    `ash`, `dash` and `bash` all run it, and a missing tool is reported, never fatal.
    `parity` adds what the parity comparison needs (pip list, locale, PYSPARK_PYTHON); it
    costs a `pip list`, so the plain check leaves it out.
    """
    packages = " ".join([*REQUIRED_PACKAGES, _VIRTUALENV])
    parity_part = _PARITY_SH.strip() if parity else ""
    return f"""
emit() {{ printf '%s=%s\\n' "$1" "$2"; }}
# lines KEY CMD...: KEY=line for the first 5 lines of CMD's combined output.
lines() {{
  key=$1; shift
  "$@" 2>&1 | {{ n=0; while IFS= read -r l || [ -n "$l" ]; do
    n=$((n+1)); [ "$n" -le 5 ] && emit "$key" "$l"; done; }}
}}
emit probe.start 1
for f in /etc/os-release /usr/lib/os-release; do
  if [ -r "$f" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      case "$l" in ID=*|ID_LIKE=*|VERSION_ID=*|PRETTY_NAME=*) emit "os.${{l%%=*}}" "${{l#*=}}";; esac
    done < "$f"
    break
  fi
done
for t in java bash ip ps sudo ls; do
  p=$(command -v "$t" 2>/dev/null) && emit "which.$t" "$p"
done
[ -x /bin/bash ] && emit file./bin/bash 1
command -v java >/dev/null 2>&1 && lines version.java java -version
command -v bash >/dev/null 2>&1 && lines version.bash bash --version
command -v ip >/dev/null 2>&1 && lines version.ip ip -V
command -v ps >/dev/null 2>&1 && lines version.ps ps --version
command -v ls >/dev/null 2>&1 && lines version.ls ls --version
command -v sudo >/dev/null 2>&1 && lines version.sudo sudo -V
PY={DATABRICKS_PYTHON}
if [ -x "$PY" ]; then
  emit python.exists 1
  "$PY" - {packages} 2>&1 <<'DCS_PY_EOF' | while IFS= read -r l || [ -n "$l" ]; do
{_PROBE_PYTHON.strip()}
DCS_PY_EOF
    case "$l" in python.*=*|pkg.*=*) printf '%s\\n' "$l";; *) emit python.stderr "$l";; esac
  done
elif [ -L "$PY" ]; then
  emit python.exists dangling
elif [ -e "$PY" ]; then
  emit python.exists not-executable
fi
{parity_part}
emit probe.end 1
"""


def parse_probe(text: str) -> dict[str, str]:
    """Probe output -> facts. Repeated keys are joined with newlines; other lines ignored."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key or " " in key:
            continue
        value = value.rstrip("\r")
        facts[key] = f"{facts[key]}\n{value}" if key in facts else value
    return facts


def parse_runtime(text: str | None) -> RuntimeLine | None:
    """`15.4`, `15.4 LTS`, `15.4.x-scala2.12`, `16.4-LTS`, `18`, `9.x` -> the known RuntimeLine
    (runtime.py); None for None/''. ValueError naming the closest known lines otherwise."""
    if text is None or not str(text).strip():
        return None
    return _runtime.resolve(str(text).strip())


# -- evaluation (pure) -------------------------------------------------------------------


def evaluate(facts: dict[str, str], image_attrs: dict[str, Any],
             runtime: str | RuntimeLine | None = None, *, parity: bool = False,
             today: date | None = None) -> list[CheckItem]:
    """Check facts from the probe and `docker image inspect` attrs against DCS requirements.

    With `parity`, the rows of `parity.compare` against `runtime` (or, without one, the newest
    LTS line with package data that fits the image's Python) follow, breaking ones first.
    A target line past its end of support (on `today`, default the current date) warns.
    """
    line = runtime if isinstance(runtime, RuntimeLine) or runtime is None else parse_runtime(runtime)
    items = [_os_item(facts, image_attrs), _arch_item(image_attrs)]
    if "probe.end" not in facts:
        items.append(_probe_failed_item(facts, image_attrs))
    else:
        items += [
            _java_item(facts, line),
            _bash_item(facts),
            _iproute2_item(facts),
            _coreutils_item(facts),
            _procps_item(facts),
            _sudo_item(facts),
            _python_item(facts, line),
            *_package_items(facts, line),
        ]
    items += [_size_item(image_attrs), _entrypoint_item(image_attrs)]
    if line is not None and not line.supported(today):
        newest = [x for x in _runtime.lts_lines() if x.supported(today)][-1:]
        items.append(_fail("runtime", f"Databricks Runtime {line.name} is out of support since "
                           f"{line.end_of_support}", "target a supported LTS line"
                           + (f" such as {newest[0].name}" if newest else ""), "warning"))
    if parity and "probe.end" in facts:
        items += _parity_items(facts, line)
    return items


def _parity_items(facts: dict[str, str], line: RuntimeLine | None) -> list[CheckItem]:
    from ..model.parity import compare

    if line is None:
        python = facts.get("python.version", "")
        fitting = [x for x in _runtime.fitting_lines(python) if _runtime.pins(x)] if python else []
        if not fitting:
            return [_fail("parity", f"no LTS line with package data runs Python {python or '(none)'}, so "
                          "there is nothing to compare with", "pass --runtime R (dcs runtimes lists the lines)")]
        line = fitting[-1]
    return compare(facts, line)


def _fail(name: str, detail: str, fix: str, severity: str = "error") -> CheckItem:
    return CheckItem(name=name, ok=False, detail=detail, fix=fix, severity=severity)


def _ok(name: str, detail: str) -> CheckItem:
    return CheckItem(name=name, ok=True, detail=detail)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


_OS_FIX = ("Use an Ubuntu base (recommended; e.g. FROM databricksruntime/standard:15.4-LTS or "
           "ubuntu:22.04), Debian, or Alpine with coreutils, procps and sudo.")


def _os_item(facts: dict[str, str], attrs: dict[str, Any]) -> CheckItem:
    image_os = attrs.get("Os") or "linux"
    if image_os != "linux":
        return _fail("os", f"the image is a {image_os} image; Databricks runs Linux containers only",
                     _OS_FIX)
    os_id = _unquote(facts.get("os.ID", "")).lower()
    like = _unquote(facts.get("os.ID_LIKE", "")).lower().split()
    pretty = _unquote(facts.get("os.PRETTY_NAME", "")) or os_id
    if not os_id:
        why = "no /etc/os-release" if "probe.end" in facts else "not checked (the probe did not run)"
        return _fail("os", f"{why}: the distribution is unknown", _OS_FIX, "warning")
    if os_id in ("ubuntu", "debian", "alpine"):
        return _ok("os", pretty)
    if {"ubuntu", "debian"} & set(like):
        return _ok("os", f"{pretty} (Debian family)")
    return _fail("os", f"{pretty}: not a distribution Databricks documents for containers "
                 "(Ubuntu, Debian, Alpine); it may work but is untested", _OS_FIX, "warning")


def _arch_item(attrs: dict[str, Any]) -> CheckItem:
    arch = attrs.get("Architecture") or "unknown"
    variant = f"/{attrs['Variant']}" if attrs.get("Variant") else ""
    if arch == "amd64":
        return _ok("architecture", "linux/amd64")
    return _fail("architecture",
                 f"{arch}{variant}: Databricks Container Services runs linux/amd64 only "
                 "(not on Graviton/arm64)",
                 "Rebuild for amd64: %dcs_build ... --platform linux/amd64 "
                 "(docker build --platform linux/amd64).")


def _probe_failed_item(facts: dict[str, str], attrs: dict[str, Any]) -> CheckItem:
    reason = facts.get("probe.error", "").strip() or "it printed nothing"
    if (attrs.get("Architecture") or "amd64") != "amd64":
        detail = (f"the image's programs cannot run on this amd64 machine ({reason}); java, bash, "
                  "Python and the other requirements were not checked")
        fix = "Rebuild for linux/amd64, then check again."
    else:
        detail = (f"/bin/sh could not run a probe in the image ({reason}); java, bash, Python and "
                  "the other requirements were not checked")
        fix = ("Databricks needs bash, coreutils and a shell: start FROM an Ubuntu/Debian base "
               "(e.g. databricksruntime/minimal) instead of a scratch/distroless image.")
    return _fail("probe", detail, fix)


_JAVA_VERSION = re.compile(r'version "(?P<v>[^"]+)"')


def java_version(text: str) -> tuple[int, int] | None:
    """`java -version` output -> (major, update): `1.8.0_191` -> (8, 191), `17.0.9` -> (17, 9)."""
    match = _JAVA_VERSION.search(text)
    if not match:
        return None
    version = match["v"]
    if version.startswith("1."):
        parts = re.split(r"[._-]", version)
        update = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
        return int(parts[1]), update
    nums = [int(p) for p in re.findall(r"\d+", version)[:3]]
    major = nums[0]
    return major, (nums[2] if len(nums) > 2 else 0)


def _java_item(facts: dict[str, str], line: RuntimeLine | None) -> CheckItem:
    jdk = line.java if line is not None else 8
    needs_17 = jdk >= 17
    install = (f"Install a JDK: RUN apt-get update && apt-get install -y openjdk-{jdk}-jdk-headless "
               f"(Alpine: apk add openjdk{jdk}-jre).")
    path = facts.get("which.java")
    if not path:
        return _fail("java", "java is not on the PATH; the Databricks Runtime needs a JDK", install)
    text = facts.get("version.java", "")
    version = java_version(text)
    if version is None:
        first = text.splitlines()[0] if text else "no output"
        return _fail("java", f"{path} does not report a version ({first})", install)
    major, update = version
    full = _JAVA_VERSION.search(text)
    shown = f"Java {major}" + (f"u{update}" if major == 8 else f" ({full['v']})" if full else "")
    if needs_17 and major < 17:
        assert line is not None
        removed = " (JDK 8 is removed)" if 8 not in line.java_installed else ""
        return _fail("java", f"{shown}: runtime {line.name} runs on JDK "
                     f"{'/'.join(map(str, [j for j in line.java_installed if j >= 17]))}{removed}", install)
    if major < 8 or (major == 8 and update < 191):
        return _fail("java", f"{shown}: Databricks needs JDK 8u191 or later", install)
    return _ok("java", f"{shown} at {path}")


def _first(facts: dict[str, str], key: str, marker: str = "") -> str:
    """The first line of a fact containing `marker` (tools may print warnings first)."""
    lines = facts.get(key, "").splitlines()
    return next((ln for ln in lines if marker.lower() in ln.lower()), lines[0] if lines else "")


def _where(path: str) -> str:
    # busybox ash answers `command -v` with the bare applet name for its built-in applets.
    return path if "/" in path else "a busybox applet"


def _apt_fix(debian: str, alpine: str | None = None) -> str:
    return (f"RUN apt-get update && apt-get install -y {debian}"
            + (f" (Alpine: apk add {alpine})" if alpine else ""))


def _bash_item(facts: dict[str, str]) -> CheckItem:
    path = facts.get("which.bash")
    if not path:
        return _fail("bash", "bash is not installed; Databricks' container scripts and init "
                     "scripts run with bash", _apt_fix("bash", "bash"))
    if "file./bin/bash" not in facts:
        return _fail("bash", f"bash is at {path} but not at /bin/bash, where #!/bin/bash scripts "
                     "look for it", f"RUN ln -s {path} /bin/bash")
    return _ok("bash", _first(facts, "version.bash") or path)


def _iproute2_item(facts: dict[str, str]) -> CheckItem:
    fix = _apt_fix("iproute2", "iproute2")
    if not facts.get("which.ip"):
        return _fail("iproute2", "`ip` is not installed; Databricks configures the container "
                     "network with iproute2", fix)
    version = _first(facts, "version.ip")
    if "iproute2" not in version:
        return _fail("iproute2", f"`ip` ({_where(facts['which.ip'])}) is not iproute2's", fix)
    return _ok("iproute2", version)


def _coreutils_item(facts: dict[str, str]) -> CheckItem:
    version = _first(facts, "version.ls")
    if "coreutils" in version:
        return _ok("coreutils", version)
    detail = ("`ls` is not GNU coreutils (busybox?)" if facts.get("which.ls")
              else "coreutils is not installed")
    return _fail("coreutils", detail, _apt_fix("coreutils", "coreutils"))


def _procps_item(facts: dict[str, str]) -> CheckItem:
    fix = _apt_fix("procps", "procps")
    if not facts.get("which.ps"):
        return _fail("procps", "`ps` is not installed; Databricks watches its processes with procps",
                     fix)
    version = _first(facts, "version.ps")
    if "procps" not in version:
        return _fail("procps", f"`ps` ({_where(facts['which.ps'])}) is not procps's", fix)
    return _ok("procps", version)


def _sudo_item(facts: dict[str, str]) -> CheckItem:
    path = facts.get("which.sudo")
    if not path:
        return _fail("sudo", "`sudo` is not installed", _apt_fix("sudo", "sudo"))
    return _ok("sudo", _first(facts, "version.sudo", "version") or path)


def fitting_runtimes(python: str) -> list[str]:
    """LTS runtime lines whose /databricks/python3 has this `major.minor` Python (runtime.py)."""
    return [line.line for line in _runtime.fitting_lines(python)]


def report_python(report: CheckReport) -> str | None:
    """The full Python version of /databricks/python3 a check found (`3.11.2`), or None.

    For the launch form: its default runtime is `runtime.default_runtime_for(...)` of this, so
    the runtime is chosen from the image's checked Python, not assumed.
    """
    try:
        detail = report["python"].detail
    except KeyError:
        return None
    match = re.match(r"Python (\d+\.\d+\.\d+(?:[a-z]+\d*)?)", detail)
    return match[1] if match else None


_VENV_FIX = ("Create the virtualenv: RUN python3 -m venv --system-site-packages /databricks/python3 "
             "(or start FROM databricksruntime/python:<runtime>-LTS).")


def _python_item(facts: dict[str, str], line: RuntimeLine | None) -> CheckItem:
    exists = facts.get("python.exists")
    if exists != "1":
        why = {"dangling": "is a broken symlink", "not-executable": "is not executable"}.get(
            exists or "", "does not exist")
        return _fail("python", f"{DATABRICKS_PYTHON} {why}; Python notebooks cannot start", _VENV_FIX)
    full = facts.get("python.version")
    if not full:
        err = _first(facts, "python.stderr") or "no output"
        return _fail("python", f"{DATABRICKS_PYTHON} does not run ({err})", _VENV_FIX)
    short = ".".join(full.split(".")[:2])
    fits = fitting_runtimes(short)
    fits_text = f"fits runtime {', '.join(fits)}" if fits else "fits no LTS runtime line"
    if line is None:
        return _ok("python", f"Python {full} ({fits_text})")
    wanted = line.python
    if short != wanted:
        base = (f"a base image for runtime {line.name} ({line.base_image}, Python {wanted})"
                if line.base_image else f"a base image with Python {wanted}")
        return _fail("python", f"Python {full}, but runtime {line.name} runs Python {wanted} ({fits_text})",
                     f"Use {base} or target a runtime this image fits.")
    return _ok("python", f"Python {full} (runtime {line.name} runs Python {wanted})")


def _package_items(facts: dict[str, str], line: RuntimeLine | None) -> list[CheckItem]:
    if not facts.get("python.version"):
        # One row instead of seven identical ones: the python item already says why.
        names = [*REQUIRED_PACKAGES.values(), _VIRTUALENV]
        return [_fail("python packages", f"not checked: {DATABRICKS_PYTHON} does not run",
                      f"After creating the virtualenv: RUN /databricks/python3/bin/pip install "
                      f"{' '.join(names)}")]
    items = []
    for module, name in [*REQUIRED_PACKAGES.items(), (_VIRTUALENV, _VIRTUALENV)]:
        fix = f"RUN /databricks/python3/bin/pip install {name}"
        severity = "error"
        if module == _VIRTUALENV:
            fix += (" (or set the spark conf spark.databricks.driverNfs.enabled false, as "
                    "Databricks' minimal images require)")
            # DBR 11+ creates notebook-scoped environments with virtualenv at startup.
            severity = "warning" if line is not None and line.version.major < 11 else "error"
        value = facts.get(f"pkg.{module}", "")
        if value.startswith("!") or not value:
            reason = value[1:] or "not reported"
            items.append(_fail(name, f"not importable by {DATABRICKS_PYTHON}: {reason}", fix, severity))
        else:
            items.append(_ok(name, value if value == "installed" else f"{name} {value}"))
    return items


def _size_item(attrs: dict[str, Any]) -> CheckItem:
    size = int(attrs.get("Size") or 0)
    shown = (f"{size / 1000**3:.2f} GB" if size >= 10**8 else f"{size / 1000**2:.0f} MB"
             if size >= 10**6 else f"{size / 1000:.0f} kB")
    if size > IMAGE_SIZE_WARN_BYTES:
        return _fail("size", f"{shown}: multi-GB images risk timing out while Databricks pulls "
                     "and sets up the container", "Drop build tools and caches (multi-stage build, "
                     "pip --no-cache-dir, rm -rf /var/lib/apt/lists/*) or use a larger instance "
                     "with a bigger root volume.", "warning")
    return _ok("size", shown)


def _entrypoint_item(attrs: dict[str, Any]) -> CheckItem:
    config = attrs.get("Config") or {}
    parts = [f"{key.upper()} {config[key]}" for key in ("Entrypoint", "Cmd") if config.get(key)]
    if parts:
        return _fail("entrypoint", f"{'; '.join(parts)} is set but Databricks ignores CMD and "
                     "ENTRYPOINT", "Move container-start work into a cluster init script "
                     "(%%init_script); remove CMD/ENTRYPOINT or accept that it never runs.",
                     "warning")
    return _ok("entrypoint", "no CMD/ENTRYPOINT (Databricks would ignore them)")


# -- running the probe (Docker) ------------------------------------------------------------


@dataclass
class ProbeRun:
    """Raw outcome of one probe container."""

    stdout: str
    stderr: str
    exit_code: int | None
    error: str = ""


def run_probe(engine: Engine, image: str, *, timeout_s: float = 180.0,
              labels: dict[str, str] | None = None, parity: bool = False) -> ProbeRun:
    """Run probe_script() in one container from `image`; the container is always removed
    (the engine's `run_container` sees to it, also when the process exits meanwhile)."""
    run = engine.run_container(
        image, ["/bin/sh", "-c", probe_script(parity)], name=f"dcs-check-{secrets.token_hex(6)}",
        timeout_s=timeout_s, user="0", network_disabled=True,
        labels={"dcs_magic.check": "1", **(labels or {})})
    if run.timed_out:
        raise EngineError(f"The check of {image!r} did not finish within {timeout_s:.0f} s.",
                          host=engine.host, hint="Something in the image blocks the probe; run it "
                          "with docker run --entrypoint /bin/sh to investigate.")
    return ProbeRun(run.stdout, run.stderr, run.exit_code, error=run.error)


def facts_from_run(run: ProbeRun) -> dict[str, str]:
    """Facts from a probe run; when the probe did not finish, why (`probe.error`)."""
    facts = parse_probe(run.stdout)
    if "probe.end" not in facts:
        reason = run.error or (run.stderr.strip().splitlines() or [""])[-1]
        if not reason and run.exit_code not in (None, 0):
            reason = f"exit code {run.exit_code}"
        facts["probe.error"] = reason
    return facts


def check(image: str, *, runtime: str | None = None, parity: bool = False,
          engine: Engine | None = None, timeout_s: float = 180.0) -> CheckReport:
    """Check a local image against the Databricks Container Services requirements.

    `runtime` is the Databricks Runtime line targeted (`15.4`, `15.4.x-scala2.12`, `18`); without
    it the Python version is reported with the runtime lines it fits. `parity` adds the
    comparison of /databricks/python3 with the line's official image (parity.py). `engine`: a connected
    `dcs_magic.engine.Engine` (default: `engine.connect()`, closed afterwards).
    Raises UsageError for a bad argument, ImageNotFoundError when the image is not local,
    EngineError when the engine is down.
    """
    if not isinstance(image, str) or not image.strip():
        raise UsageError("No image given to check.", hint="Pass a local image reference or id, "
                         "e.g. %dcs_check myrepo/myimage:1.0")
    try:
        line = parse_runtime(runtime)
    except ValueError as exc:
        raise UsageError(str(exc), hint="Pass --runtime like 15.4 or 18 (dcs runtimes lists the lines).") from exc
    if engine is None:
        from ..adapters.engine import connect

        with connect() as own:
            return check(image, runtime=runtime, parity=parity, engine=own, timeout_s=timeout_s)
    attrs = engine.inspect_image(image)
    run = run_probe(engine, image, timeout_s=timeout_s, parity=parity)
    return CheckReport(image=image, checks=evaluate(facts_from_run(run), attrs, line, parity=parity))
