"""Base drift: has a lock's base tag moved, and what changed that matters on Databricks (pure).

`dcs outdated NOTEBOOK` (dcs_magic.ops.outdated) asks the registry whether each lock entry's
base tag still serves the digest the build recorded. When it does not, both images' registry
records (the image config JSON and the manifest, read by adapters/registry.py: nothing is
pulled into an engine, nothing is run) become `ImageFacts` (`image_facts`), and `diff` says
what changed that matters on a cluster, most important first:

    platform   DCS runs linux/amd64 only
    Python     /databricks/python3 must be the cluster runtime's Python
    JDK        the runtime's default JDK (8 up to 15.4, 17 for 16.4 and 17.3; 18 drops 8)
    OS         the distribution release (apt packages and glibc under the Dockerfile's RUNs)
    env        PYSPARK_PYTHON, LANG / LC_ALL, JAVA_HOME, PATH, ... (secret-looking values masked)
    pins       Python packages pinned in the build history, the parity-relevant ones marked
    user, size, labels, created

Where each fact comes from (a config says less than a running image, and nothing is run to
learn more): Python from `ENV PYTHON_VERSION`, a label naming a Python version, or the build
history (a `python_version=3.11` build arg, `virtualenv --python=python3.11`, `python3.11`
in a RUN); the JDK from `ENV JAVA_VERSION`, `ENV JAVA_HOME`, or the history
(`update-java-alternatives -s zulu17-ca-amd64`, `openjdk-17-jre-headless`); the OS from the
`org.opencontainers.image.ref.name` / `.version` labels distribution images set; pins from
`pip install name==version` in RUN steps and `pip_version=`-style build args. What a config
does not say is "unknown" (with its source left empty), never guessed from the tag.

`BaseDrift` is one lock entry's answer and `OutdatedReport` the whole lock's, with the exit
status `dcs outdated` returns: 0 up to date, 1 a base tag moved (or the lock cannot show that
it has not), 2 a registry could not be asked.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import runtime
from .parity import BREAKING_MISSING
from .pins import normalise
from .runtime import RuntimeLine
from .secrets import MASK, is_secret_key

__all__ = [
    "AMD64",
    "EXIT_CODES",
    "BaseDrift",
    "Change",
    "Fact",
    "ImageFacts",
    "OutdatedReport",
    "diff",
    "image_facts",
    "jdk_major",
    "rebuild_command",
]

AMD64 = "linux/amd64"

# Each entry's status and the exit status it asks for. `moved`, `unrecorded` and `gone` all
# need someone to act (rebuild, or pick another base); `unreachable` is a question not answered.
EXIT_CODES = {"current": 0, "pinned": 0, "no-base": 0, "moved": 1, "unrecorded": 1, "gone": 1, "unreachable": 2}

_DISTROS = {"ubuntu", "debian", "alpine", "rockylinux", "almalinux", "centos", "fedora", "amazonlinux",
            "opensuse", "ubi", "ubi8", "ubi9", "redhat"}
_OS_NAME_LABEL = "org.opencontainers.image.ref.name"
_OS_VERSION_LABEL = "org.opencontainers.image.version"

# Why an environment variable matters on a Databricks cluster.
_ENV_WHY = {
    "PYSPARK_PYTHON": "the Python Databricks starts for notebooks and Spark (/databricks/python3/bin/python3)",
    "LANG": "Unity Catalog expects C.UTF-8 (the official images set it from 15.4)",
    "LC_ALL": "Unity Catalog expects C.UTF-8 (the official images set it from 15.4)",
    "JAVA_HOME": "the JDK Spark starts with",
    "PATH": "which java and python3 the runtime finds",
    "VIRTUAL_ENV": "the virtualenv pip installs into",
}
_LABEL_LINES = 12
_SIZE_MATTERS = 0.10  # a compressed size change of 10% or more is listed among what matters


@dataclass(frozen=True)
class Fact:
    """One fact read from an image's config: its value (None: unknown) and where it was read."""

    value: str | None
    source: str = ""

    def __str__(self) -> str:
        return self.value if self.value else "unknown"

    def described(self) -> str:
        """`3.11.9 (ENV PYTHON_VERSION)`, or `unknown (not in the image config)`."""
        return f"{self} ({self.source or 'not in the image config'})"

    def to_dict(self) -> dict[str, str | None]:
        return {"value": self.value, "source": self.source or None}


_UNKNOWN = Fact(None)


@dataclass(frozen=True)
class ImageFacts:
    """What one image's registry record says that matters on Databricks.

    `digest` is the digest the tag served (an index or a manifest), `manifest` the linux/amd64
    image manifest's (the same digest for a single-platform image; None when an index has no
    linux/amd64 image), `platforms` an index's platforms. `size` is the compressed size of the
    layers a cluster pulls.
    """

    digest: str
    manifest: str | None = None
    platforms: tuple[str, ...] = ()
    platform: str | None = None
    created: str | None = None
    python: Fact = _UNKNOWN
    jdk: Fact = _UNKNOWN
    os: Fact = _UNKNOWN
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    pins: Mapping[str, str] = field(default_factory=dict)
    size: int | None = None
    layers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "manifest": self.manifest, "platforms": list(self.platforms),
            "platform": self.platform, "created": self.created, "python": self.python.to_dict(),
            "jdk": self.jdk.to_dict(), "os": self.os.to_dict(), "env": _masked(self.env),
            "labels": dict(self.labels), "user": self.user, "pins": dict(self.pins), "size": self.size,
            "layers": self.layers,
        }


# -- reading a config ------------------------------------------------------------------------


def image_facts(config: Mapping[str, Any] | None, *, digest: str, manifest: str | None = None,
                platforms: Sequence[str] = (), size: int | None = None,
                layers: int | None = None) -> ImageFacts:
    """The facts of one image from its config JSON (`GET /v2/<repo>/blobs/<config digest>`).

    CONFIG None: the tag serves an index without a linux/amd64 image, so only `platforms` is
    known."""
    if config is None:
        return ImageFacts(digest=digest, manifest=manifest, platforms=tuple(platforms), size=size, layers=layers)
    inner = config.get("config") or {}
    env = _env(inner.get("Env") or [])
    labels = {str(k): str(v) for k, v in (inner.get("Labels") or {}).items()}
    history = [str(h.get("created_by") or "") for h in config.get("history") or [] if isinstance(h, Mapping)]
    os_name, arch, variant = config.get("os"), config.get("architecture"), config.get("variant")
    platform = "/".join(str(p) for p in (os_name, arch, variant) if p) if os_name and arch else None
    return ImageFacts(
        digest=digest, manifest=manifest, platforms=tuple(platforms), platform=platform,
        created=str(config["created"]) if config.get("created") else None,
        python=_python(env, labels, history), jdk=_jdk(env, history), os=_os(labels), env=env, labels=labels,
        user=str(inner.get("User") or ""), pins=_pins(history), size=size, layers=layers)


def _env(items: Iterable[Any]) -> dict[str, str]:
    env = {}
    for item in items:
        key, _, value = str(item).partition("=")
        if key:
            env[key] = value
    return env


def _masked(env: Mapping[str, str]) -> dict[str, str]:
    return {k: MASK if is_secret_key(k) and v else v for k, v in env.items()}


_VERSION = r"(\d+\.\d+(?:\.\d+)?(?:[a-z]+\d*)?)"
_PY_ARG = re.compile(r"\bpython_?version=[\"']?" + _VERSION, re.IGNORECASE)
_PY_VENV = re.compile(r"--python[= ](?:\S*/)?python(3\.\d{1,2})\b")
_PY_NAMED = re.compile(r"\bpython(3\.\d{1,2})(?![\d])")


def _python(env: Mapping[str, str], labels: Mapping[str, str], history: Sequence[str]) -> Fact:
    if env.get("PYTHON_VERSION"):
        return Fact(env["PYTHON_VERSION"], "ENV PYTHON_VERSION")
    for key, value in sorted(labels.items()):
        lowered = key.lower()
        if "python" in lowered and "version" in lowered and re.fullmatch(_VERSION, value.strip()):
            return Fact(value.strip(), f"label {key}")
    for pattern, what in ((_PY_ARG, "python_version={}"), (_PY_VENV, "virtualenv --python=python{}"),
                          (_PY_NAMED, "python{}")):
        found = _last(pattern, history)
        if found:
            return Fact(found, f"build history: {what.format(found)}")
    return _UNKNOWN


def _last(pattern: re.Pattern[str], history: Sequence[str]) -> str | None:
    """The last match's first group in the history (the most recent layer decides)."""
    found = None
    for line in history:
        for match in pattern.finditer(line):
            found = match[1]
    return found


_JDK = re.compile(r"(?:jdk|java|zulu|openjdk|temurin|corretto|jre)[-_]?(1\.8|\d{1,2})", re.IGNORECASE)
_JDK_PLAIN = re.compile(r"^\s*(1\.8|\d{1,2})(?:[.u+_-]|$)")
_JDK_DEFAULT = re.compile(r"update-java-alternatives\s+(?:--set|-s)\s+(\S+)")
_JDK_INSTALL = re.compile(r"\b(?:openjdk-(\d{1,2})-j(?:re|dk)|zulu(\d{1,2})-|temurin-(\d{1,2})-j(?:re|dk)"
                          r"|java-(\d{1,2})-amazon-corretto)")


def jdk_major(text: str | None) -> str | None:
    """The JDK major version a JAVA_VERSION / JAVA_HOME value names: `jdk-17.0.9+9`, `17.0.9`,
    `8u392`, `/usr/lib/jvm/java-17-openjdk-amd64`, `/usr/lib/jvm/zulu17-ca-amd64` -> `17` / `8`
    (`1.8` is 8); None when it names none."""
    if not text:
        return None
    match = _JDK_PLAIN.match(text) or _JDK.search(text)
    if not match:
        return None
    return "8" if match[1] == "1.8" else str(int(match[1]))


def _jdk(env: Mapping[str, str], history: Sequence[str]) -> Fact:
    for key in ("JAVA_VERSION", "JAVA_HOME"):
        major = jdk_major(env.get(key))
        if major:
            return Fact(major, f"ENV {key}={env[key]}")
    default = _last(_JDK_DEFAULT, history)
    if default and jdk_major(default):
        return Fact(jdk_major(default), f"build history: update-java-alternatives -s {default}")
    installed = None
    for line in history:
        for match in _JDK_INSTALL.finditer(line):
            installed = next(g for g in match.groups() if g)
    if installed:
        return Fact(str(int(installed)), f"build history: JDK {int(installed)} installed")
    return _UNKNOWN


def _os(labels: Mapping[str, str]) -> Fact:
    name, version = labels.get(_OS_NAME_LABEL, "").strip(), labels.get(_OS_VERSION_LABEL, "").strip()
    if name.lower() in _DISTROS and version:
        return Fact(f"{name} {version}", f"labels {_OS_NAME_LABEL}, {_OS_VERSION_LABEL}")
    return _UNKNOWN


_PIN = re.compile(r"(?<![\w.=/-])([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]\s]*\])?==([0-9][A-Za-z0-9.+!_-]*)")
_TOOL_ARG = re.compile(r"\b(pip|setuptools|wheel|virtualenv)_version=[\"']?([0-9][\w.+!-]*)", re.IGNORECASE)


def _pins(history: Sequence[str]) -> dict[str, str]:
    """`name==version` in RUN steps that run pip, and pip/setuptools/wheel/virtualenv build
    args; a later layer's pin wins."""
    pins: dict[str, str] = {}
    for line in history:
        for match in _TOOL_ARG.finditer(line):
            pins[match[1].lower()] = match[2]
        if "pip" not in line:
            continue
        for match in _PIN.finditer(line):
            pins[normalise(match[1])] = match[2].rstrip(".")
    return pins


# -- comparing two images ----------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between the image a lock was built on and the one its tag serves now.
    `matters` False: listed as context (created, small size changes, most labels)."""

    what: str
    before: str
    after: str
    why: str = ""
    matters: bool = True

    def __str__(self) -> str:
        return f"{self.what}: {self.before} -> {self.after}" + (f" ({self.why})" if self.why else "")

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "before": self.before, "after": self.after, "why": self.why,
                "matters": self.matters}


def diff(old: ImageFacts, new: ImageFacts, *, line: RuntimeLine | None = None) -> list[Change]:
    """What changed from OLD to NEW that matters on Databricks, most important first; LINE is
    the runtime the image is meant for (the cluster last launched, else the base tag's line),
    so a change can say whether the image still fits it."""
    changes = _platform(old, new)
    if old.platform is None or new.platform is None:  # no linux/amd64 config on one side
        return changes
    facts = [("Python", old.python, new.python, _python_why(new.python, old.python, line)),
             ("JDK", old.jdk, new.jdk, _jdk_why(new.jdk, line)), ("OS", old.os, new.os, _os_why(new.os))]
    shown: set[str] = set()  # ENV keys a fact change above already shows (with its value)
    for what, before, after, why in facts:
        found = _fact_change(what, before, after, why)
        changes += found
        if found:
            shown |= {f.source[len("ENV "):].split("=")[0] for f in (before, after) if f.source.startswith("ENV ")}
    changes += _env_changes({k: v for k, v in old.env.items() if k not in shown},
                            {k: v for k, v in new.env.items() if k not in shown})
    changes += _pin_changes(old.pins, new.pins, line)
    if old.user != new.user:
        changes.append(Change("user", old.user or "root", new.user or "root",
                              "the user your Dockerfile's RUN steps run as (pip into /databricks/python3 needs "
                              "write access)"))
    changes += _size_change(old.size, new.size)
    changes += _label_changes(old.labels, new.labels)
    if old.created != new.created and old.created and new.created:
        changes.append(Change("created", old.created, new.created, matters=False))
    return sorted(changes, key=lambda c: not c.matters)  # stable: the order above within each group


def _platform(old: ImageFacts, new: ImageFacts) -> list[Change]:
    def shown(facts: ImageFacts) -> str:
        if facts.platform:
            return facts.platform
        return f"no {AMD64} image (the index has {', '.join(facts.platforms) or 'no platforms'})"

    if old.platform == new.platform:
        return []
    why = ("Databricks Container Services runs linux/amd64 only: a cluster cannot start from it"
           if new.platform != AMD64 else "")
    return [Change("platform", shown(old), shown(new), why)]


def _fact_change(what: str, old: Fact, new: Fact, why: str) -> list[Change]:
    if old.value == new.value:
        return []
    source = new.source or old.source
    return [Change(what, str(old), str(new) + (f" [{source}]" if source else ""), why)]


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _python_why(new: Fact, old: Fact, line: RuntimeLine | None) -> str:
    if not new.value:
        return "the new image's config does not say; `dcs check IMAGE` after a rebuild runs it to find out"
    if old.value and _minor(old.value) == _minor(new.value):
        return f"a patch release of Python {_minor(new.value)}: the same runtime lines fit"
    if line is not None:
        return runtime.fits(new.value, line)[1]
    fitting = runtime.fitting_lines(new.value)
    if not fitting:
        return f"no LTS Databricks Runtime runs Python {_minor(new.value)}"
    return (f"Python {_minor(new.value)} is the Python of {', '.join(f.name for f in fitting)}: the cluster's "
            "runtime must be one of them")


def _jdk_why(new: Fact, line: RuntimeLine | None) -> str:
    if not new.value:
        return "the new image's config does not say; `dcs check IMAGE` after a rebuild runs java to find out"
    major = int(new.value)
    if line is not None:
        if major == line.java:
            return f"the default JDK of {line.name}"
        installed = "/".join(map(str, line.java_installed))
        return (f"{line.name} starts Spark on JDK {line.java} (installs {installed}); JDK {major} "
                + ("is installed there but not the default" if major in line.java_installed else "is not among them"))
    defaults = [f.name for f in runtime.lines() if f.java == major and f.lts]
    if defaults:
        return f"the default JDK of {', '.join(defaults)}"
    return f"no LTS Databricks Runtime defaults to JDK {major}"


def _os_why(new: Fact) -> str:
    if not new.value:
        return ""
    name, _, version = new.value.partition(" ")
    if name.lower() == "ubuntu":
        same = [f.name for f in runtime.lines() if f.ubuntu == version and f.lts]
        if same:
            return (f"the Ubuntu of {', '.join(same)}; apt packages and glibc under your Dockerfile's RUN steps "
                    "change with it")
    return "apt packages and glibc under your Dockerfile's RUN steps change with it"


def _env_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    out = []
    for key in sorted(set(old) | set(new), key=lambda k: (k not in _ENV_WHY, k)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        secret = is_secret_key(key)
        out.append(Change(f"ENV {key}", "unset" if before is None else MASK if secret else repr(before),
                          "unset" if after is None else MASK if secret else repr(after), _ENV_WHY.get(key, "")))
    return out


def _pin_changes(old: Mapping[str, str], new: Mapping[str, str], line: RuntimeLine | None) -> list[Change]:
    official = runtime.pins(line) if line is not None else {}
    relevant = set(BREAKING_MISSING) | set(official)
    out = []
    for name in sorted(set(old) | set(new), key=lambda n: (n not in relevant, n)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if line is not None and name in official:
            why = f"parity: the official {line.name} image has {official[name]}"
        elif name in BREAKING_MISSING:
            why = "parity: the notebook REPL and Arrow depend on its major version"
        else:
            why = ""
        out.append(Change(f"pin {name}", before or "not pinned", after or "not pinned", why, matters=name in relevant))
    return out


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns at GB


def _size_change(old: int | None, new: int | None) -> list[Change]:
    if old is None or new is None or old == new:
        return []
    share = abs(new - old) / old if old else 1.0
    return [Change("size", _size(old), _size(new), "compressed; every cluster start pulls it",
                   matters=share >= _SIZE_MATTERS)]


def _label_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
            and k not in (_OS_NAME_LABEL, _OS_VERSION_LABEL) and not k.startswith("dcs_magic.")]
    out = [Change(f"label {k}", repr(old[k]) if k in old else "unset", repr(new[k]) if k in new else "unset",
                  matters="databricks" in k.lower()) for k in keys[:_LABEL_LINES]]
    if len(keys) > _LABEL_LINES:
        out.append(Change("labels", "", f"{len(keys) - _LABEL_LINES} more changed", matters=False))
    return out


# -- the answer per lock entry and for the lock ---------------------------------------------------


def rebuild_command(notebook: str, *, name: str | None, tags: Sequence[str], push: bool) -> str:
    """The one line that brings a lock entry up to date: `dcs build NOTEBOOK [--name N] -t TAG ...
    [--push] --pull`.

    Why a rebuild and not an edit of the lock: the lock describes an image built from its
    base, so a lock naming the new base digest beside an image built from the old one would
    lie; the rebuild writes both. Why `--pull`: without it the engine builds from its own
    copy of the base, which is the old image when it pulled the tag before, and the lock
    would record the old digest again.
    """
    words = ["dcs", "build", notebook]
    if name:
        words += ["--name", name]
    for tag in tags or ["TAG"]:
        words += ["-t", tag]
    if push:
        words.append("--push")
    words.append("--pull")
    return " ".join(shlex.quote(w) if w != "TAG" else w for w in words)


@dataclass
class BaseDrift:
    """One lock entry's answer. `status`: `current`, `moved`, `unrecorded` (the lock has no base
    digest), `gone` (the registry no longer has the tag), `unreachable`, `pinned` (a FROM by
    digest alone: nothing can move), `no-base` (FROM scratch)."""

    name: str
    base: str | None
    status: str
    recorded: str | None = None
    current: str | None = None
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    update: str | None = None
    old: ImageFacts | None = None
    new: ImageFacts | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def headline(self) -> str:
        base = self.base or "(none)"
        if self.status == "moved":
            return f"{self.name}: base {base} moved: {self.recorded} -> {self.current}"
        if self.status == "current":
            return f"{self.name}: base {base} up to date ({self.current})"
        if self.status == "unrecorded":
            return (f"{self.name}: base {base}: the lock records no base digest; rebuild to record it "
                    f"(the tag serves {self.current} now)")
        if self.status == "gone":
            return f"{self.name}: base {base}: the registry no longer has this tag"
        if self.status == "unreachable":
            return f"{self.name}: base {base}: the registry could not be asked"
        if self.status == "pinned":
            return f"{self.name}: base {base} is pinned by digest: it cannot move"
        return f"{self.name}: no base image (FROM scratch): nothing to follow"

    def lines(self) -> list[str]:
        out = [self.headline]
        important = [c for c in self.changes if c.matters]
        context = [c for c in self.changes if not c.matters]
        out += [f"  {c}" for c in important]
        if context:
            out.append("  also: " + "; ".join(str(c) for c in context))
        out += [f"  note: {n}" for n in self.notes]
        if self.update:
            out.append(f"  update: {self.update}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "base": self.base, "status": self.status, "exit_code": self.exit_code,
            "recorded": self.recorded, "current": self.current, "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes), "update": self.update,
            "old": self.old.to_dict() if self.old else None, "new": self.new.to_dict() if self.new else None,
        }


@dataclass
class OutdatedReport:
    """`dcs outdated` / `%dcs_outdated`: one `BaseDrift` per lock entry.

    `exit_code`: 1 when any entry needs a rebuild (moved, unrecorded, gone), else 2 when a
    registry could not be asked, else 0. A known needed update wins over an unanswered
    question, so CI acts on what it knows; the text and `to_dict()` say which did not answer.
    """

    lock_file: str
    entries: list[BaseDrift]
    notebook: str | None = None

    @property
    def exit_code(self) -> int:
        codes = {e.exit_code for e in self.entries}
        return 1 if 1 in codes else 2 if 2 in codes else 0

    @property
    def ok(self) -> bool:
        """True when every base is up to date (exit status 0)."""
        return self.exit_code == 0

    @property
    def verdict(self) -> str:
        return {0: "up to date", 1: "outdated", 2: "unknown (a registry could not be asked)"}[self.exit_code]

    def __getitem__(self, name: str) -> BaseDrift:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def lines(self) -> list[str]:
        out = [] if self.entries else [f"{self.lock_file} records no image: nothing to follow"]
        for entry in self.entries:
            out += entry.lines()
        return out

    def __repr__(self) -> str:
        return "\n".join([f"OutdatedReport({self.lock_file}: {self.verdict})", *("  " + x for x in self.lines())])

    def to_dict(self) -> dict[str, Any]:
        return {"lock": self.lock_file, "notebook": self.notebook, "status": self.verdict.split(" (")[0],
                "exit_code": self.exit_code, "images": [e.to_dict() for e in self.entries]}

    def _repr_html_(self) -> str:
        """One block per lock entry; colours only from JupyterLab's theme variables (the status
        is a bar beside the text, the words say it), as the check report does."""
        from html import escape

        bars = {0: "--jp-success-color1", 1: "--jp-warn-color0", 2: "--jp-error-color1"}
        text = "color:var(--jp-content-font-color1)"
        blocks = []
        for entry in self.entries:
            body = [f"<li>{escape(str(c))}</li>" for c in entry.changes if c.matters]
            body += [f'<li style="opacity:0.8">{escape(str(c))}</li>' for c in entry.changes if not c.matters]
            body += [f"<li>note: {escape(n)}</li>" for n in entry.notes]
            if entry.update:
                body.append(f"<li>update: <code>{escape(entry.update)}</code></li>")
            blocks.append(
                f'<div class="dcs-outdated-{entry.status}" style="{text};border-left:4px solid '
                f'var({bars[entry.exit_code]});padding-left:6px;margin:4px 0">'
                f"<b>{escape(entry.headline)}</b>" + (f"<ul>{''.join(body)}</ul>" if body else "") + "</div>")
        return (f'<div class="dcs-outdated" style="{text}"><p role="status"><b>{escape(self.lock_file)}</b>: '
                f"{escape(self.verdict)}</p>{''.join(blocks)}</div>")
