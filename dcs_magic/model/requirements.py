"""The Databricks Container Services requirements an image is checked against (pure).

    evaluate(facts, image_attrs, runtime) -> [CheckItem]

reads the facts the probe found in the image (probe.py) and what `docker image inspect` said
about it, and returns one CheckItem per requirement: OS, architecture, JDK, bash, iproute2,
coreutils, procps, sudo, /databricks/python3 and its packages, image size, CMD/ENTRYPOINT;
with `parity=True`, the rows of parity.compare follow. Each failing item says how to fix it.
Runtime facts (the line's Python, JDK, end of support) come from runtime.py.
Requirements and their reasons: ../shared/dcs-facts.md ("What a custom image must contain").

Apart from probe.py because parity.py reads the probe's facts too (`java_version`) and is
read here: probe <- parity <- requirements, one way, where a single module and parity would
import each other.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from . import runtime as _runtime
from .probe import DATABRICKS_PYTHON, REQUIRED_PACKAGES, VIRTUALENV, java_release, java_version
from .results import CheckItem, CheckReport
from .runtime import RuntimeLine

__all__ = [
    "IMAGE_SIZE_WARN_BYTES",
    "OS_ITEMS",
    "evaluate",
    "fitting_runtimes",
    "parse_runtime",
    "report_python",
]


# Multi-GB images risk Databricks' container setup timeout: the VM pulls and extracts the
# whole image before the runtime is copied in.
IMAGE_SIZE_WARN_BYTES = 5 * 1000**3

# Items whose failure Databricks reports as DOCKER_INVALID_OS_EXCEPTION at cluster start.
OS_ITEMS = ("os", "architecture")


def parse_runtime(text: str | None) -> RuntimeLine | None:
    """`15.4`, `15.4 LTS`, `15.4.x-scala2.12`, `16.4-LTS`, `18`, `9.x` -> the known RuntimeLine
    (runtime.py); None for None/''. ValueError naming the closest known lines otherwise."""
    if text is None or not str(text).strip():
        return None
    return _runtime.resolve(str(text).strip())


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
        items += _parity_items(facts, line, runtime if isinstance(runtime, str) else None)
    return items


def _parity_items(facts: dict[str, str], line: RuntimeLine | None, key: str | None = None) -> list[CheckItem]:
    from .parity import compare

    if line is None:
        python = facts.get("python.version", "")
        fitting = [x for x in _runtime.fitting_lines(python) if _runtime.pins(x)] if python else []
        if not fitting:
            return [_fail("parity", f"no LTS line with package data runs Python {python or '(none)'}, so "
                          "there is nothing to compare with", "pass --runtime R (dcs runtimes lists the lines)")]
        line = fitting[-1]
    return compare(facts, line, key=key)


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
    full = java_release(text)
    shown = f"Java {major}" + (f"u{update}" if major == 8 else f" ({full})" if full else "")
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
        names = [*REQUIRED_PACKAGES.values(), VIRTUALENV]
        return [_fail("python packages", f"not checked: {DATABRICKS_PYTHON} does not run",
                      f"After creating the virtualenv: RUN /databricks/python3/bin/pip install "
                      f"{' '.join(names)}")]
    items = []
    for module, name in [*REQUIRED_PACKAGES.items(), (VIRTUALENV, VIRTUALENV)]:
        fix = f"RUN /databricks/python3/bin/pip install {name}"
        severity = "error"
        if module == VIRTUALENV:
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
