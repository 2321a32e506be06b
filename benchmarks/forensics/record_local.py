"""Record the forensics corpus's local cases: real failed starts on the local preflight workspace.

    python benchmarks/forensics/record_local.py [--only KIND ...] [--keep]

Starts a `dcs_magic.preflight.server.LocalWorkspaceServer`, a plain and an htpasswd
`docker-registry`, builds images from the realistic DCS base (`dcs-magic/dcs-base:bookworm`,
scripts/make-base-image.sh) that lack one thing each, creates one cluster per way the local
workspace can fail (through the official databricks-sdk, as a user would), waits for
TERMINATED and saves into `cases/local-<kind>/`:

    cluster.json    clusters/get, as the API returned it (basic_auth and tokens scrubbed)
    events.json     every page of clusters/events, oldest first
    <cid>/...       the logs delivered under cluster_log_conf (a volume), when the local
                    workspace answers the Files API for them (tolerated when it does not yet)
    expected.json   the signature the case must be diagnosed as (kept when present: a
                    re-recording must not silently change what is expected)

Needs the test suite's real parts (`bash scripts/dev-env.sh deps services`): a Docker engine,
`docker-registry`, `htpasswd`. Objects are named `dcs-bench-forensics...` (never `dcs-test`,
so a test session's cleanup cannot touch them) and removed at the end (`--keep` leaves the
images). Every file written is checked for the registry password and the server's token.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CASES = HERE / "cases"
sys.path.insert(0, str(REPO / "tests"))  # the test helpers start registries and build images

import docker  # noqa: E402
from databricks.sdk import WorkspaceClient  # noqa: E402
from integration.conftest import aarch64_exit0_elf, layer_tar, load_image  # noqa: E402
from support.images import build_image, push_image  # noqa: E402
from support.registry import Registry, start_registry  # noqa: E402

from dcs_magic.preflight import LocalWorkspaceServer  # noqa: E402

PREFIX = "dcs-bench-forensics"
BASE = os.environ.get("DCS_TEST_BASE_IMAGE", "dcs-magic/dcs-base:bookworm")
SPARK_VERSION = "15.4.x-scala2.12"  # Python 3.11, as the base image
SECRET_REFERENCE = "{{secrets/dcs-bench-forensics/nowhere}}"
LOG_ROOT = "/Volumes/main/default/cluster-logs"

SCRIPTS = {
    "fail.sh": b'#!/bin/bash\nset -e\necho "installing things"\nexit 3\n',
    # No apt-get update first, as users forget: apt cannot know the package (offline, deterministic).
    "apt.sh": b"#!/bin/bash\nset -e\napt-get install -y dcs-forensics-no-such-package\n",
    "noexec.sh": b"#!/bin/bash\nset -e\n/opt/dcs/tool-not-executable --version\n",
    "arm.sh": b"#!/bin/bash\nset -e\n/opt/dcs/arm64-tool\n",
    "pip.sh": (b"#!/bin/bash\nset -e\n/databricks/python3/bin/pip install --no-index "
               b"dcs-forensics-no-such-package==1.0\n"),
}


@dataclass
class Case:
    kind: str
    expected: str | None
    note: str
    image: str = "good"  # a key of Recorder.images
    registry: str = "auth"  # auth | plain
    password: str | None = None  # None: the registry's own
    spark_version: str = SPARK_VERSION
    init_scripts: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)  # set (None: unset) while it launches


def file_script(name: str) -> dict[str, Any]:
    return {"file": {"destination": f"file:/opt/dcs/{name}"}}


CASE_LIST = [
    Case("pull-denied", "registry-unauthorized", "wrong password for an htpasswd registry (401)",
         password="wrong-password"),
    Case("missing-tag", "manifest-unknown", "a tag that was never pushed (404 manifest unknown)", image="never-pushed"),
    Case("arm64", "wrong-os", "an arm64 image", image="arm64", registry="plain"),
    Case("python-mismatch", "local-python-mismatch",
         "Python 3.11 image on a runtime that runs Python 3.12", spark_version="17.3.x-scala2.13"),
    Case("no-java", "local-java-missing", "the JDK removed from the image", image="nojava", registry="plain"),
    Case("no-python3", "python3-missing", "/databricks/python3 removed from the image", image="nopython",
         registry="plain"),
    Case("no-virtualenv", "virtualenv-missing", "virtualenv removed from /databricks/python3's reach",
         image="novirtualenv", registry="plain"),
    Case("init-exit", "init-exec-failed", "an init script that exits 3 (and a second one, skipped)",
         init_scripts=[file_script("fail.sh"), file_script("fail.sh")]),
    Case("init-apt", "apt-no-package", "an init script that apt-get installs without apt-get update",
         init_scripts=[file_script("apt.sh")]),
    Case("init-pip", "pip-no-distribution", "an init script that pip installs a package that does not exist",
         init_scripts=[file_script("pip.sh")]),
    Case("init-permission", "init-permission", "an init script that runs a file without its exec bit",
         init_scripts=[file_script("noexec.sh")]),
    Case("init-exec-format", "exec-format", "an init script that runs an arm64 binary in the amd64 image",
         init_scripts=[file_script("arm.sh")]),
    Case("init-missing", "init-fetch-failed", "an init script that was never uploaded (workspace:)",
         init_scripts=[{"workspace": {"destination": "/Users/dcs-bench@example.com/missing-init.sh"}}]),
    Case("secret-unresolved", "local-secret-env", "basic_auth.password a secret reference that is not set",
         password=SECRET_REFERENCE, env={"DCS_SECRET_DCS_BENCH_FORENSICS_NOWHERE": None}),
]


class Recorder:
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.client = docker.from_env(version="auto")
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
        self.made: list[str] = []
        self.plain: Registry = start_registry(self._dir("plain"))
        self.auth: Registry = start_registry(self._dir("auth"), username="dcs-bench",
                                             password=secrets.token_urlsafe(18))
        self.server = LocalWorkspaceServer().start()
        config = self.tmp / "databrickscfg"
        config.write_text("")
        self.w = WorkspaceClient(host=self.server.host, token=self.server.token, auth_type="pat",
                                 config_file=str(config))
        self.images: dict[str, dict[str, str]] = {}  # name -> {registry kind: ref}
        self.secrets = [s for s in (self.auth.password, self.server.token) if s]

    def _dir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir()
        return path

    def _ref(self, registry: Registry, name: str, tag: str = "1") -> str:
        ref = f"{registry.host}/{PREFIX}-{name}:{tag}"
        self.made.append(ref)
        return ref

    def build(self) -> None:
        """The images: the base with the scripts (good), and one per missing requirement."""
        self.client.images.get(BASE)  # made by scripts/make-base-image.sh (the test suite's)
        files = dict(SCRIPTS)
        files["arm64-tool"] = aarch64_exit0_elf()
        dockerfile = (f"FROM {BASE}\nCOPY *.sh arm64-tool /opt/dcs/\n"
                      "RUN printf '#!/bin/sh\\necho 1.0\\n' > /opt/dcs/tool-not-executable "
                      "&& chmod 644 /opt/dcs/tool-not-executable\n")
        variants = {
            "good": "",
            "nojava": "RUN rm -rf /usr/lib/jvm /usr/bin/java /etc/alternatives/java\n",
            "nopython": "RUN rm -rf /databricks/python3\n",
            "novirtualenv": ("RUN rm -rf /usr/lib/python3/dist-packages/virtualenv* "
                             "/databricks/python3/lib/python3*/site-packages/virtualenv*\n"),
        }
        for name, extra in variants.items():
            local = f"{PREFIX}-{name}:build"
            self.made.append(local)
            build_image(self.client, local, dockerfile + extra, files)
            refs = {}
            for kind, registry in (("plain", self.plain), ("auth", self.auth)):
                ref = self._ref(registry, name)
                self.client.images.get(local).tag(ref)
                push_image(self.client, ref, registry.auth_config)
                refs[kind] = ref
            self.images[name] = refs
        never = self._ref(self.auth, "good", "never-pushed")
        self.client.images.get(self.images["good"]["auth"]).tag(never)
        self.images["never-pushed"] = {"auth": never}
        arm = self._ref(self.plain, "arm64")
        load_image(self.client, arm, [layer_tar({"bin/sh": aarch64_exit0_elf()})], architecture="arm64")
        push_image(self.client, arm)
        self.images["arm64"] = {"plain": arm}

    def record(self, case: Case) -> Path:
        registry = self.auth if case.registry == "auth" else self.plain
        image = self.images[case.image][case.registry]
        docker_image: dict[str, Any] = {"url": image}
        if registry.username:
            docker_image["basic_auth"] = {"username": registry.username,
                                          "password": case.password or registry.password}
        body: dict[str, Any] = {
            "cluster_name": f"{PREFIX}-{case.kind}", "spark_version": case.spark_version,
            "node_type_id": "i3.xlarge", "num_workers": 0, "data_security_mode": "SINGLE_USER",
            "single_user_name": "dcs-bench@example.com", "docker_image": docker_image,
            "cluster_log_conf": {"volumes": {"destination": LOG_ROOT}},
            **({"init_scripts": case.init_scripts} if case.init_scripts else {})}
        saved = {k: os.environ.get(k) for k in case.env}
        for key, value in case.env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            api = self.w.api_client
            try:
                cluster_id = api.do("POST", "/api/2.1/clusters/create", body=body)["cluster_id"]
            except Exception as exc:  # noqa: BLE001 - an older server refusing cluster_log_conf
                print(f"  create with cluster_log_conf refused ({exc}); without it")
                body.pop("cluster_log_conf")
                cluster_id = api.do("POST", "/api/2.1/clusters/create", body=body)["cluster_id"]
            info = self.settle(cluster_id)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        out = CASES / f"local-{case.kind}"
        for old in out.glob("*"):
            if old.name != "expected.json":
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        out.mkdir(parents=True, exist_ok=True)
        scrubbed = self.scrub(info)
        (out / "cluster.json").write_text(json.dumps(scrubbed, indent=2, sort_keys=True) + "\n")
        (out / "events.json").write_text(json.dumps({"events": self.events(cluster_id)}, indent=2,
                                                    sort_keys=True) + "\n")
        logs = self.logs(cluster_id, out)
        expected = out / "expected.json"
        if not expected.exists():
            expected.write_text(json.dumps({
                "signature": case.expected, "note": f"local preflight, recorded: {case.note}",
                "source": "benchmarks/forensics/record_local.py (a real failed start on the local "
                          "preflight workspace)"}, indent=2) + "\n")
        self.check_no_secrets(out)
        reason = (info.get("termination_reason") or {}).get("code")
        print(f"  {case.kind}: {info.get('state')} {reason} ({logs} log files) -> {out.relative_to(REPO)}")
        return out

    def settle(self, cluster_id: str, timeout_s: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = self.w.api_client.do("GET", "/api/2.1/clusters/get", query={"cluster_id": cluster_id})
            if info.get("state") in ("TERMINATED", "ERROR"):
                return dict(info)
            if info.get("state") == "RUNNING":
                self.w.api_client.do("POST", "/api/2.1/clusters/delete", body={"cluster_id": cluster_id})
                raise RuntimeError(f"{cluster_id} reached RUNNING: the case does not fail")
            time.sleep(0.3)
        raise RuntimeError(f"{cluster_id} did not settle within {timeout_s} s")

    def events(self, cluster_id: str) -> list[dict[str, Any]]:
        """Every page, oldest first, as the API sent them."""
        body: dict[str, Any] = {"cluster_id": cluster_id, "order": "ASC", "limit": 50}
        events: list[dict[str, Any]] = []
        while True:
            page = self.w.api_client.do("POST", "/api/2.1/clusters/events", body=body)
            events += [self.scrub(e) for e in page.get("events") or []]
            following = page.get("next_page")
            if not following:
                return events
            body = dict(following)

    def logs(self, cluster_id: str, out: Path) -> int:
        """The delivered logs under <LOG_ROOT>/<cluster id>/, through the Files API
        (WorkspaceClient.files); 0 when the local workspace does not serve them (yet)."""
        count = 0
        try:
            stack = [f"{LOG_ROOT}/{cluster_id}"]
            while stack:
                for entry in self.w.files.list_directory_contents(stack.pop()):
                    path = str(entry.path)
                    if entry.is_directory:
                        stack.append(path.rstrip("/"))
                        continue
                    target = out / path.removeprefix(f"{LOG_ROOT}/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    contents = self.w.files.download(path).contents
                    target.write_bytes(contents.read() if contents is not None else b"")
                    count += 1
        except Exception as exc:  # noqa: BLE001 - the local workspace may not deliver logs yet
            print(f"  (no delivered logs: {type(exc).__name__}: {str(exc)[:120]})")
        return count

    def scrub(self, data: Any) -> Any:
        """basic_auth passwords out (clusters/get on Databricks never returns them)."""
        text = json.dumps(data)
        for secret in self.secrets:
            text = text.replace(secret, "<scrubbed>")
        data = json.loads(text)
        auth = ((data.get("docker_image") or {}).get("basic_auth") or {}) if isinstance(data, dict) else {}
        if "password" in auth:
            auth["password"] = "<scrubbed>" if not str(auth["password"]).startswith("{{") else auth["password"]
        return data

    def check_no_secrets(self, out: Path) -> None:
        for file in out.rglob("*"):
            if file.is_file():
                text = file.read_text(errors="replace")
                for secret in self.secrets:
                    if secret in text:
                        raise RuntimeError(f"{file} holds a secret; not kept")

    def close(self) -> None:
        self.server.stop()
        if not self.keep:
            for ref in self.made:
                try:
                    self.client.images.remove(ref, force=True)
                except docker.errors.APIError:
                    pass
        for registry in (self.plain, self.auth):
            registry.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case kinds to record (default: all)")
    parser.add_argument("--keep", action="store_true", help="leave the built images")
    args = parser.parse_args(argv)
    chosen = [c for c in CASE_LIST if not args.only or c.kind in args.only]
    recorder = Recorder(args.keep)
    failed: list[str] = []
    try:
        print(f"building images from {BASE} ...")
        recorder.build()
        for case in chosen:
            try:
                recorder.record(case)
            except Exception as exc:  # noqa: BLE001 - record the others, report this one
                failed.append(f"{case.kind}: {exc}")
                print(f"  {case.kind}: FAILED {exc}")
    finally:
        recorder.close()
    for line in failed:
        print(f"not recorded: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
