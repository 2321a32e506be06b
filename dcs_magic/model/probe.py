"""The probe `dcs check` runs in an image, and how its output is read (pure).

One container is run from the image with its entrypoint replaced by a POSIX `sh` probe
(busybox/Alpine compatible; it does not need bash to find out that bash is missing). The
probe prints `key=value` lines, the facts:

    probe_script(parity) -> str                the shell script run in the container
    parse_probe(text) -> dict[str, str]        its output as facts
    facts_from_run(ProbeRun) -> facts          the same, saying why when the probe did not finish
    java_version(text) -> (major, update)      the `java -version` fact read
    python_version(text) -> "3.11.2"           `python3 --version` read (ops.check.image_python)

With `parity=True` the probe also prints `pip list --format=json` of /databricks/python3,
the full Python version, LANG / LC_ALL and PYSPARK_PYTHON. What the facts mean for Databricks
is requirements.py's (the check items) and parity.py's (the comparison with the runtime line's
official image), both of which read `java -version` with `java_version` here; ops/check.py
runs the probe through the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DATABRICKS_PYTHON",
    "REQUIRED_PACKAGES",
    "VIRTUALENV",
    "ProbeRun",
    "facts_from_run",
    "java_release",
    "java_version",
    "parse_probe",
    "probe_script",
    "python_version",
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
VIRTUALENV = "virtualenv"
"""Checked like a required package; DBR 11+ builds notebook environments with it."""

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
    packages = " ".join([*REQUIRED_PACKAGES, VIRTUALENV])
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


_PYTHON_VERSION = re.compile(r"^Python (\d+\.\d+\.\d+(?:[a-z]+\d*)?)", re.MULTILINE)


def python_version(text: str) -> str | None:
    """`python3 --version` output -> `3.11.2` (`3.12.0rc1`); None when it names no version
    (Python 2 prints it on stderr, so give stdout and stderr together)."""
    match = _PYTHON_VERSION.search(text)
    return match[1] if match else None


_JAVA_VERSION = re.compile(r'version "(?P<v>[^"]+)"')


def java_release(text: str) -> str | None:
    """The version `java -version` output quotes: `17.0.9`, `1.8.0_191`; None without one."""
    match = _JAVA_VERSION.search(text)
    return match["v"] if match else None


def java_version(text: str) -> tuple[int, int] | None:
    """`java -version` output -> (major, update): `1.8.0_191` -> (8, 191), `17.0.9` -> (17, 9)."""
    version = java_release(text)
    if version is None:
        return None
    if version.startswith("1."):
        parts = re.split(r"[._-]", version)
        update = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
        return int(parts[1]), update
    nums = [int(p) for p in re.findall(r"\d+", version)[:3]]
    major = nums[0]
    return major, (nums[2] if len(nums) > 2 else 0)


@dataclass
class ProbeRun:
    """Raw outcome of one probe container."""

    stdout: str
    stderr: str
    exit_code: int | None
    error: str = ""


def facts_from_run(run: ProbeRun) -> dict[str, str]:
    """Facts from a probe run; when the probe did not finish, why (`probe.error`)."""
    facts = parse_probe(run.stdout)
    if "probe.end" not in facts:
        reason = run.error or (run.stderr.strip().splitlines() or [""])[-1]
        if not reason and run.exit_code not in (None, 0):
            reason = f"exit code {run.exit_code}"
        facts["probe.error"] = reason
    return facts

