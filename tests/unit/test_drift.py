"""model/drift.py: what an image config says, what changed between two, the report (pure).

The configs are shaped like the ones registries serve (Env as `K=V` strings, Labels, history
`created_by` lines as the classic builder and BuildKit write them; the official
`databricksruntime` images' ARG and RUN lines are copied from the public Dockerfiles).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dcs_magic.model import drift, runtime
from dcs_magic.model.drift import BaseDrift, Change, Fact, ImageFacts, OutdatedReport, diff, image_facts, jdk_major

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def config(env: list[str] | None = None, labels: dict[str, str] | None = None, history: list[str] | None = None,
           *, arch: str = "amd64", user: str = "", created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"architecture": arch, "os": "linux", "created": created,
            "config": {"Env": env or [], "Labels": labels, "User": user},
            "history": [{"created_by": line} for line in history or []]}


# -- reading one config ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "major"), [
    ("jdk-17.0.9+9", "17"), ("17.0.9", "17"), ("8u392", "8"), ("21", "21"), ("1.8.0_392", "8"),
    ("/usr/lib/jvm/java-17-openjdk-amd64", "17"), ("/usr/lib/jvm/zulu17-ca-amd64", "17"),
    ("/usr/lib/jvm/java-8-openjdk-amd64/jre", "8"), ("/usr/lib/jvm/jdk1.8.0_202", "8"),
    ("/usr/lib/jvm/java-1.8.0-openjdk", "8"), ("/opt/java/openjdk", None), ("", None), (None, None),
])
def test_jdk_major_reads_java_version_and_java_home(text: str | None, major: str | None) -> None:
    assert jdk_major(text) == major


def test_facts_from_env_labels_and_platform() -> None:
    facts = image_facts(config(["PATH=/usr/bin", "PYTHON_VERSION=3.11.9", "JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64",
                                "LANG=C.UTF-8"],
                               {"org.opencontainers.image.ref.name": "ubuntu", "org.opencontainers.image.version": "22.04"},
                               user="libraries"),
                        digest=OLD, manifest=OLD, size=1234, layers=3)
    assert facts.platform == "linux/amd64" and facts.created == "2026-01-01T00:00:00Z"
    assert facts.python == Fact("3.11.9", "ENV PYTHON_VERSION")
    assert facts.jdk == Fact("17", "ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64")
    assert facts.os == Fact("ubuntu 22.04", "labels org.opencontainers.image.ref.name, org.opencontainers.image.version")
    assert facts.env["LANG"] == "C.UTF-8" and facts.user == "libraries" and (facts.size, facts.layers) == (1234, 3)


def test_facts_of_the_official_python_image_come_from_its_build_history() -> None:
    """databricksruntime/python's config has no PYTHON_VERSION or JAVA_HOME: its build args and
    RUN lines say the Python, the default JDK and the pins (classic builder `|N k=v` form)."""
    history = [
        "/bin/sh -c #(nop)  LABEL org.opencontainers.image.ref.name=ubuntu",
        '|2 JDK8_VERSION=8.0.432-1 JDK17_VERSION=17.0.13-1 /bin/sh -c apt-get install -y zulu8=$JDK8_VERSION '
        "zulu17=$JDK17_VERSION zulu17-jre=$JDK17_VERSION",
        "|2 JDK8_VERSION=8.0.432-1 JDK17_VERSION=17.0.13-1 /bin/sh -c update-java-alternatives -s zulu17-ca-amd64",
        "|4 python_version=3.9 pip_version=21.2.4 setuptools_version=58.0.4 wheel_version=0.37.0 /bin/sh -c "
        "apt-get install -y python${python_version} python${python_version}-dev",
        "|4 python_version=3.9 pip_version=21.2.4 setuptools_version=58.0.4 wheel_version=0.37.0 /bin/sh -c "
        "/usr/local/bin/pip${python_version} install --no-cache-dir virtualenv==20.8.0",
        "RUN /bin/sh -c /databricks/python3/bin/pip install six==1.16.0 jedi==0.18.0 ipython==7.32.0 numpy==1.20.3 "
        "pandas==1.3.4 pyarrow==7.0.0 matplotlib==3.4.3 jinja2==2.11.3 ipykernel==6.12.1 # buildkit",
        "/bin/sh -c #(nop)  ENV PYSPARK_PYTHON=/databricks/python3/bin/python3",
    ]
    facts = image_facts(config(["PYSPARK_PYTHON=/databricks/python3/bin/python3"], history=history), digest=OLD)
    assert facts.python == Fact("3.9", "build history: python_version=3.9")
    assert facts.jdk == Fact("17", "build history: update-java-alternatives -s zulu17-ca-amd64")
    assert facts.pins == {"pip": "21.2.4", "setuptools": "58.0.4", "wheel": "0.37.0", "virtualenv": "20.8.0",
                          "six": "1.16.0", "jedi": "0.18.0", "ipython": "7.32.0", "numpy": "1.20.3", "pandas": "1.3.4",
                          "pyarrow": "7.0.0", "matplotlib": "3.4.3", "jinja2": "2.11.3", "ipykernel": "6.12.1"}
    assert facts.os.value is None  # a ref.name label without a version says no release


def test_other_history_forms_and_unknowns() -> None:
    venv = image_facts(config(history=["/bin/sh -c virtualenv --python=/usr/bin/python3.11 /databricks/python3",
                                       "/bin/sh -c apt-get install -y openjdk-17-jre-headless"]), digest=OLD)
    assert venv.python == Fact("3.11", "build history: virtualenv --python=python3.11")
    assert venv.jdk == Fact("17", "build history: JDK 17 installed")
    named = image_facts(config(history=["/bin/sh -c apt-get install -y python3.12-venv"],
                               labels={"com.example.python.version": "3.12.3"}), digest=OLD)
    assert named.python == Fact("3.12.3", "label com.example.python.version")
    bare = image_facts(config(history=["/bin/sh -c echo pip==not-a-version"]), digest=OLD)
    assert (bare.python, bare.jdk, bare.os, bare.pins) == (Fact(None), Fact(None), Fact(None), {})
    assert str(bare.python) == "unknown" and bare.python.described() == "unknown (not in the image config)"


def test_an_index_without_linux_amd64_has_only_platforms() -> None:
    facts = image_facts(None, digest=NEW, platforms=("linux/arm64/v8",))
    assert facts.platform is None and facts.manifest is None and facts.platforms == ("linux/arm64/v8",)


def test_secret_looking_env_values_are_masked_in_the_json() -> None:
    facts = image_facts(config(["API_TOKEN=abc123", "LANG=C.UTF-8"]), digest=OLD)
    assert facts.to_dict()["env"] == {"API_TOKEN": "****", "LANG": "C.UTF-8"}
    assert "abc123" not in json.dumps(facts.to_dict())


# -- comparing ---------------------------------------------------------------------------------------

BEFORE = config(["PATH=/usr/bin", "PYTHON_VERSION=3.11.9", "JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64",
                 "LANG=C.UTF-8", "API_TOKEN=old-secret"],
                {"org.opencontainers.image.ref.name": "ubuntu", "org.opencontainers.image.version": "22.04",
                 "team": "data"},
                ["RUN /bin/sh -c pip install numpy==1.23.5 requests==2.31.0"])
AFTER = config(["PATH=/usr/bin", "PYTHON_VERSION=3.12.3", "JAVA_HOME=/usr/lib/jvm/java-21-openjdk-amd64",
                "API_TOKEN=new-secret"],
               {"org.opencontainers.image.ref.name": "ubuntu", "org.opencontainers.image.version": "24.04",
                "team": "ml"},
               ["RUN /bin/sh -c pip install numpy==2.1.3 requests==2.32.0"], created="2026-06-01T00:00:00Z")


def test_diff_names_what_matters_first_and_why() -> None:
    old = image_facts(BEFORE, digest=OLD, manifest=OLD, size=100_000_000)
    new = image_facts(AFTER, digest=NEW, manifest=NEW, size=150_000_000)
    changes = diff(old, new)
    by = {c.what: c for c in changes}
    assert [c.what for c in changes] == [
        "Python", "JDK", "OS", "ENV LANG", "ENV API_TOKEN", "pin numpy", "size", "pin requests",
        "label team", "created"]
    # The lines named come from model/runtime.py, the one owner of runtime facts.
    lines_312 = ", ".join(line.name for line in runtime.fitting_lines("3.12"))
    assert lines_312 and str(by["Python"]) == (f"Python: 3.11.9 -> 3.12.3 [ENV PYTHON_VERSION] (Python 3.12 is the "
                                               f"Python of {lines_312}: the cluster's runtime must be one of them)")
    assert by["JDK"].before == "17" and by["JDK"].after.startswith("21 [ENV JAVA_HOME=")
    jdk21 = [line.name for line in runtime.lines() if line.java == 21 and line.lts]
    assert by["JDK"].why == (f"the default JDK of {', '.join(jdk21)}" if jdk21
                             else "no LTS Databricks Runtime defaults to JDK 21")
    noble = ", ".join(line.name for line in runtime.lines() if line.ubuntu == "24.04" and line.lts)
    assert (by["OS"].before, by["OS"].why.split(";")[0]) == ("ubuntu 22.04", f"the Ubuntu of {noble}")
    assert (by["ENV LANG"].after, "Unity Catalog" in by["ENV LANG"].why) == ("unset", True)
    assert (by["ENV API_TOKEN"].before, by["ENV API_TOKEN"].after) == ("****", "****")
    assert "secret" not in " ".join(str(c) for c in changes)
    assert by["pin numpy"].matters and "parity" in by["pin numpy"].why
    assert not by["pin requests"].matters and not by["created"].matters and not by["label team"].matters
    assert str(by["size"]) == "size: 100.0 MB -> 150.0 MB (compressed; every cluster start pulls it)"


def test_diff_against_the_cluster_runtime_says_whether_the_image_still_fits() -> None:
    line = runtime.by_name("15.4")
    assert line is not None
    old = image_facts(BEFORE, digest=OLD)
    new = image_facts(AFTER, digest=NEW)
    by = {c.what: c for c in diff(old, new, line=line)}
    assert by["Python"].why == runtime.fits("3.12.3", line)[1]
    assert "does not fit 15.4 LTS" in by["Python"].why
    assert by["JDK"].why == "15.4 LTS starts Spark on JDK 8 (installs 8/17); JDK 21 is not among them"
    assert by["pin numpy"].why == f"parity: the official 15.4 LTS image has {runtime.pins(line)['numpy']}"


def test_a_patch_release_and_unchanged_images() -> None:
    old = image_facts(config(["PYTHON_VERSION=3.11.9"]), digest=OLD)
    new = image_facts(config(["PYTHON_VERSION=3.11.11"]), digest=NEW)
    [change] = diff(old, new)
    assert change.why == "a patch release of Python 3.11: the same runtime lines fit"
    assert diff(old, image_facts(config(["PYTHON_VERSION=3.11.9"]), digest=NEW)) == []


def test_platform_changes_say_dcs_runs_amd64_only() -> None:
    old = image_facts(config(["PYTHON_VERSION=3.11.9"]), digest=OLD)
    arm = image_facts(config(["PYTHON_VERSION=3.12.0"], arch="arm64"), digest=NEW)
    [platform, python] = diff(old, arm)
    assert (platform.before, platform.after) == ("linux/amd64", "linux/arm64")
    assert "linux/amd64 only" in platform.why and python.what == "Python"
    gone = image_facts(None, digest=NEW, platforms=("linux/arm64",))
    [only] = diff(old, gone)  # nothing else to compare without an amd64 config
    assert only.after == "no linux/amd64 image (the index has linux/arm64)"


def test_many_label_changes_are_summarised() -> None:
    old = image_facts(config(labels={f"k{i:02}": "1" for i in range(20)}), digest=OLD)
    new = image_facts(config(labels={f"k{i:02}": "2" for i in range(20)}), digest=NEW)
    changes = diff(old, new)
    assert len(changes) == 13 and str(changes[-1]) == "labels:  -> 8 more changed"


# -- the answer ------------------------------------------------------------------------------------------


def test_rebuild_command_keeps_the_tags_and_pulls() -> None:
    assert drift.rebuild_command("my nb.ipynb", name=None, tags=["r:5000/app:1", "r:5000/app:latest"], push=True) \
        == "dcs build 'my nb.ipynb' -t r:5000/app:1 -t r:5000/app:latest --push --pull"
    assert drift.rebuild_command("nb.ipynb", name="app", tags=[], push=False) == "dcs build nb.ipynb --name app -t TAG --pull"


def test_report_exit_codes_and_text() -> None:
    moved = BaseDrift("app", "r/base:1", "moved", recorded=OLD, current=NEW,
                      changes=[Change("Python", "3.11.9", "3.12.3", "why"), Change("created", "a", "b", matters=False)],
                      update="dcs build nb.ipynb -t r/app:1 --push --pull")
    current = BaseDrift("tools", "r/tools:1", "current", recorded=OLD, current=OLD)
    lost = BaseDrift("other", "r/other:1", "unreachable", recorded=OLD, notes=["cannot connect (Connection refused)"])
    assert OutdatedReport("nb.dcs.lock.json", [current]).exit_code == 0
    assert OutdatedReport("nb.dcs.lock.json", []).lines() == ["nb.dcs.lock.json records no image: nothing to follow"]
    assert OutdatedReport("nb.dcs.lock.json", [current, lost]).exit_code == 2
    report = OutdatedReport("nb.dcs.lock.json", [moved, current, lost])
    assert report.exit_code == 1 and not report.ok and report["tools"] is current
    assert report.lines() == [
        f"app: base r/base:1 moved: {OLD} -> {NEW}",
        "  Python: 3.11.9 -> 3.12.3 (why)",
        "  also: created: a -> b",
        "  update: dcs build nb.ipynb -t r/app:1 --push --pull",
        f"tools: base r/tools:1 up to date ({OLD})",
        "other: base r/other:1: the registry could not be asked",
        "  note: cannot connect (Connection refused)",
    ]
    data = report.to_dict()
    assert (data["status"], data["exit_code"]) == ("outdated", 1)
    assert [(i["name"], i["status"], i["exit_code"]) for i in data["images"]] == [
        ("app", "moved", 1), ("tools", "current", 0), ("other", "unreachable", 2)]
    assert data["images"][0]["changes"][0] == {"what": "Python", "before": "3.11.9", "after": "3.12.3", "why": "why",
                                               "matters": True}
    html = report._repr_html_()
    assert "dcs-outdated-moved" in html and "update: <code>dcs build nb.ipynb" in html and "outdated" in html
    assert repr(report).startswith("OutdatedReport(nb.dcs.lock.json: outdated)")


@pytest.mark.parametrize(("status", "words"), [
    ("unrecorded", "the lock records no base digest; rebuild to record it"),
    ("gone", "the registry no longer has this tag"), ("pinned", "is pinned by digest: it cannot move"),
    ("no-base", "no base image (FROM scratch)"),
])
def test_every_status_has_words_and_an_exit_code(status: str, words: str) -> None:
    entry = BaseDrift("app", "r/base:1" if status != "no-base" else None, status, current=NEW)
    assert words in entry.headline and entry.exit_code == drift.EXIT_CODES[status]


def test_facts_to_dict_is_json() -> None:
    facts = image_facts(BEFORE, digest=OLD, manifest=OLD, size=1, layers=1)
    data = json.loads(json.dumps(facts.to_dict()))
    assert data["python"] == {"value": "3.11.9", "source": "ENV PYTHON_VERSION"} and data["env"]["API_TOKEN"] == "****"
    assert isinstance(ImageFacts(digest=OLD).to_dict()["platforms"], list)
