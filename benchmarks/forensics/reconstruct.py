"""Write the corpus's recorded Databricks cases: artefacts reconstructed from public reports.

    python benchmarks/forensics/reconstruct.py     (rewrites cases/rec-*/; the local-* ones are
                                                    record_local.py's)

No one can download another user's cluster, so each case places the lines a user posted
(verbatim, from the thread named in its expected.json `source`) in the layout Databricks gives
them: clusters/get JSON (`cluster.json`), clusters/events pages (`events.json`), and the
delivered cluster logs (`<cluster-id>/driver/{stderr,log4j-active.log}`, `<cluster-id>/
init_scripts/<cluster-id>_<ip>/<ts>_<id>_<name>.sh.stderr.log`) or a single pasted file. What
is not from the report (ids, times, the surrounding start-up lines, a termination code the
report does not show) is ordinary filler and is said so in the note. Variants (another
module, jar, registry) are marked as such: they test that the table matches on structure.
"""

# The reported lines stay whole (verbatim), however long.
# ruff: noqa: E501

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

CASES = Path(__file__).resolve().parent / "cases"
T0 = 1796800000000  # 2026-12-07, ms: filler times

LOG4J_START = [
    "26/12/07 06:01:02 INFO DriverDaemon$: Started Log4j2",
    "26/12/07 06:01:03 INFO DriverDaemon$: Current JVM Version 17.0.12",
    "26/12/07 06:01:03 INFO DriverDaemon$: ========== driver starting up ==========",
]
STDERR_START = [
    "ANTLR Tool version 4.9.3 used for code generation does not match the current runtime version 4.13.1",
    "OpenJDK 64-Bit Server VM warning: ignoring option MaxPermSize=512m; support was removed in 8.0",
]


def cluster(cid: str, image: str, *, state: str = "TERMINATED", code: str | None = None,
            message: str = "", type_: str = "CLIENT_ERROR", spark: str = "15.4.x-scala2.12",
            **params: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cluster_id": cid, "cluster_name": "dcs-custom", "spark_version": spark,
        "node_type_id": "i3.xlarge", "driver_node_type_id": "i3.xlarge", "num_workers": 0,
        "data_security_mode": "SINGLE_USER", "single_user_name": "someone@example.com",
        "docker_image": {"url": image}, "state": state, "state_message": message,
        "start_time": T0, "cluster_source": "UI",
        "cluster_log_conf": {"dbfs": {"destination": "dbfs:/cluster-logs"}},
    }
    if code:
        info["termination_reason"] = {"code": code, "type": type_,
                                      "parameters": {"databricks_error_message": message, **params}}
        info["terminated_time"] = T0 + 600_000
    return info


def events(*items: dict[str, Any]) -> dict[str, Any]:
    out = [{"cluster_id": "", "timestamp": T0 + 1000 * i, **item} for i, item in enumerate(items)]
    return {"events": out, "total_count": len(out)}


def terminating(code: str, message: str, type_: str = "CLIENT_ERROR") -> dict[str, Any]:
    return {"type": "TERMINATING", "details": {"reason": {
        "code": code, "type": type_, "parameters": {"databricks_error_message": message}}}}


def init_finished(destination: str, status: str, error: str = "") -> dict[str, Any]:
    script: dict[str, Any] = {"workspace": {"destination": destination}, "status": status,
                              "execution_duration_seconds": 4}
    if error:
        script["error_message"] = error
    return {"type": "INIT_SCRIPTS_FINISHED", "details": {"init_scripts": {
        "cluster": [script], "reported_for_node": "10.0.1.5"}}}


def init_log(cid: str, name: str, lines: list[str]) -> tuple[str, str]:
    return (f"{cid}/init_scripts/{cid}_10_0_1_5/20261207_060105_00_{name}.stderr.log", "\n".join(lines) + "\n")


def write(case: str, expected: str | None, note: str, source: str, files: dict[str, Any]) -> None:
    out = CASES / case
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, content in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (dict, list)):
            for event in content.get("events", []) if isinstance(content, dict) else []:
                event["cluster_id"] = files.get("cluster.json", {}).get("cluster_id", "")
            path.write_text(json.dumps(content, indent=2) + "\n")
        else:
            path.write_text(content if content.endswith("\n") else content + "\n")
    (out / "expected.json").write_text(json.dumps(
        {"signature": expected, "note": note, "source": source}, indent=2) + "\n")


def main() -> None:
    for old in CASES.glob("rec-*"):
        shutil.rmtree(old)
    cases()
    print(f"{len(list(CASES.glob('rec-*')))} reconstructed cases in {CASES}")


def cases() -> None:  # noqa: PLR0915 - one block per case, on purpose
    # -- the notebook REPL -------------------------------------------------------------------
    cid = "1207-060101-rapids01"
    write("rec-virtualenv-rapids", "virtualenv-missing",
          "cluster RUNNING; attaching a notebook fails (log4j lines verbatim, DBR 12.2 + gpu-conda image)",
          "github.com/rapidsai/deployment/pull/247 (2023-06-14)", {
              "cluster.json": cluster(cid, "jacobtomlinson/rapids_databricks:23-06-nightly", state="RUNNING",
                                      spark="12.2.x-gpu-scala2.12"),
              f"{cid}/driver/log4j-active.log": "\n".join(LOG4J_START + [
                  '26/12/07 06:03:10 WARN PythonDriverWrapper: Failed to start repl ReplId-1f2c3-5a8e1-7d0b2-4',
                  'java.lang.Exception: Cannot run program "virtualenv" (in directory "/local_disk0/pythonVirtualEnvDirs"): error=2, No such file or directory',
                  "\tat java.lang.ProcessBuilder.start(ProcessBuilder.java:1048)",
                  "\tat org.apache.spark.util.Utils$.executeCommand(Utils.scala:1507)",
                  "\tat org.apache.spark.util.DatabricksUtils$.createPythonVirtualEnv(DatabricksUtils.scala:602)"])})
    cid = "1207-060102-google01"
    write("rec-repl-google", "module-missing",
          "notebook cell output pasted as a file (lines verbatim; DBR 13.2, databricksruntime/standard)",
          "github.com/databricks/containers/issues/131", {
              "cluster.json": cluster(cid, "myregistry.azurecr.io/custom:13.2", state="RUNNING",
                                      spark="13.2.x-scala2.12"),
              "notebook-error.txt": "Failure starting repl. Try detaching and re-attaching the notebook.\n"
                                    "ModuleNotFoundError: No module named 'google'\n"
                                    "java.lang.Exception: Unable to start python kernel for ReplId-7d1e2-1c4a5-0b0f3-5, "
                                    "kernel exited with exit code 1."})
    cid = "1207-060103-ipython1"
    write("rec-repl-variant-ipython", "module-missing",
          "VARIANT of rec-repl-google: another missing module (IPython) in the driver's stderr",
          "github.com/databricks/containers/issues/131 (pattern); module name varied", {
              "cluster.json": cluster(cid, "ghcr.io/acme/dbr:15.4", state="RUNNING"),
              f"{cid}/driver/stderr": "\n".join(STDERR_START + [
                  "Traceback (most recent call last):",
                  '  File "/databricks/python_shell/scripts/db_ipykernel_launcher.py", line 18, in <module>',
                  "    from IPython.core.interactiveshell import InteractiveShell",
                  "ModuleNotFoundError: No module named 'IPython'"])})
    cid = "1207-060104-numpy001"
    write("rec-numpy-abi", "numpy-abi",
          "driver stderr with the reported traceback tail (verbatim ValueError; a Databricks Python path)",
          "github.com/dbt-labs/dbt-spark/pull/1053", {
              "cluster.json": cluster(cid, "acme/dbr-ml-extras:7", state="RUNNING", spark="10.4.x-scala2.12"),
              f"{cid}/driver/stderr": "\n".join(STDERR_START + [
                  "/databricks/python/lib/python3.7/site-packages/thinc/backends/numpy_ops.pyx in init thinc.backends.numpy_ops()",
                  "ValueError: numpy.ndarray size changed, may indicate binary incompatibility. Expected 88 from C header, got 80 from PyObject"])})
    cid = "1207-060105-numpy002"
    write("rec-numpy-abi-pandas", "numpy-abi",
          "VARIANT: numpy.dtype in pandas' import (numpy 2.x under pandas 2.1.1), REPL failure around it",
          "github.com/numpy/numpy/issues/26710", {
              "cluster.json": cluster(cid, "acme/dbr:15.4-np2", state="RUNNING"),
              f"{cid}/driver/log4j-active.log": "\n".join(LOG4J_START + [
                  "26/12/07 06:04:00 WARN PythonDriverWrapper: Failed to start repl ReplId-2a3b4-5c6d7-8e9f0-1"]),
              f"{cid}/driver/stderr": "\n".join(STDERR_START + [
                  '  File "/databricks/python3/lib/python3.11/site-packages/pandas/_libs/__init__.py", line 18, in <module>',
                  "    from pandas._libs.interval import Interval",
                  '  File "interval.pyx", line 1, in init pandas._libs.interval',
                  "ValueError: numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 from PyObject"])})
    cid = "1207-060106-import01"
    write("rec-import-name", "import-name",
          "driver stderr: ImportError of a name between mismatched package versions (markupsafe 2.1 "
          "removed soft_unicode); no public DCS thread found, the pattern is the one dcs-facts names",
          "dcs-facts.md (What users of custom containers struggle with: mismatched packages)", {
              "cluster.json": cluster(cid, "acme/dbr:13.3-custom", state="RUNNING", spark="13.3.x-scala2.12"),
              f"{cid}/driver/stderr": "\n".join(STDERR_START + [
                  "Traceback (most recent call last):",
                  '  File "/databricks/python3/lib/python3.10/site-packages/jinja2/filters.py", line 13, in <module>',
                  "    from markupsafe import soft_unicode",
                  "ImportError: cannot import name 'soft_unicode' from 'markupsafe' (/databricks/python3/lib/python3.10/site-packages/markupsafe/__init__.py)"])})
    # -- jars ----------------------------------------------------------------------------------
    cid = "1207-060107-jar00001"
    msg = ("Spark encountered an error on startup. This issue can be caused by invalid Spark configurations "
           "or malfunctioning init scripts.")
    write("rec-jar-shadowing-164", "jar-shadowing",
          "15.4 image with a jar in /databricks/jars on DBR 16.4 (log4j verbatim; the termination code is "
          "not in the report: SPARK_STARTUP_FAILURE assumed)",
          "github.com/databricks/containers/issues/220 (2025-05-02)", {
              "cluster.json": cluster(cid, "acme/my-spark-app:15.4", code="SPARK_STARTUP_FAILURE", message=msg,
                                      spark="16.4.x-scala2.12"),
              "events.json": events({"type": "CREATING"}, terminating("SPARK_STARTUP_FAILURE", msg)),
              f"{cid}/driver/log4j-active.log": "\n".join([
                  "WARN StatusConsoleListener RollingFileAppender 'com.databricks.UsageLogging.appender': The bufferSize is set to 128000 but bufferedIO is not true",
                  "%d [%thread] %-5level %logger - %msg%n java.lang.NoSuchMethodError: 'org.apache.spark.internal.config.ConfigBuilder org.apache.spark.internal.config.ConfigBuilder.owner(java.lang.String)'",
                  "\tat com.databricks.spark.DatabricksSparkConf$AioaLazyConfigConf$.<clinit>(DatabricksSparkConf.scala:2234) ~[----ws_3_5--core--core-hive-2.3__hadoop-3.2_2.13_deploy.jar:?]",
                  "\tat com.databricks.spark.EnvConfigMap.get(DatabricksEdgeConfigs.scala:384) ~[----ws_3_5--core--core-hive-2.3__hadoop-3.2_2.13_deploy.jar:?]"])})
    cid = "1207-060108-jar00002"
    write("rec-jar-shadowing-variant", "jar-shadowing",
          "VARIANT: another Spark class (catalyst Cast, built against open-source Spark), SPARK_ERROR",
          "github.com/databricks/containers/issues/220 (mechanism); class varied", {
              "cluster.json": cluster(cid, "acme/etl:14.3", code="SPARK_ERROR",
                                      message="Spark error: Spark encountered an error on startup.", spark="15.4.x-scala2.12"),
              f"{cid}/driver/log4j-active.log": "\n".join(LOG4J_START + [
                  "26/12/07 06:02:11 ERROR DriverDaemon$: XXX Fatal uncaught exception. Terminating driver.",
                  "java.lang.NoSuchMethodError: 'void org.apache.spark.sql.catalyst.expressions.Cast.<init>(org.apache.spark.sql.catalyst.expressions.Expression, org.apache.spark.sql.types.DataType, scala.Option)'",
                  "\tat com.acme.etl.Transforms$.castAll(Transforms.scala:42)"])})
    cid = "1207-060109-lance001"
    write("rec-class-not-found-lance", "class-not-found",
          "executor stderr from cluster_log_conf (verbatim lines; cluster RUNNING, the job's executors died)",
          "github.com/lance-format/lance-spark/issues/538", {
              "cluster.json": cluster(cid, "acme/lance:18.2", state="RUNNING", spark="18.2.x-scala2.13"),
              f"{cid}/executor/app-20261207060200-0000/0/stderr": "\n".join([
                  "thread 'lance-jni-dispatcher' (2688) panicked at src/dispatcher.rs:44:22:",
                  "AsyncScanner class not found: JavaException",
                  "ERROR SparkUncaughtExceptionHandler: Uncaught exception in thread Thread-91:",
                  "java.lang.NoClassDefFoundError: org/lance/ipc/AsyncScanner",
                  "Caused by: java.lang.ClassNotFoundException: org.lance.ipc.AsyncScanner",
                  "\tat java.base/jdk.internal.loader.BuiltinClassLoader.loadClass(BuiltinClassLoader.java:641)"])})
    cid = "1207-060110-mysql001"
    write("rec-class-not-found-jdbc", "class-not-found",
          "VARIANT: another missing jar (a JDBC driver) in the driver's log4j",
          "github.com/lance-format/lance-spark/issues/538 (pattern); class varied", {
              "cluster.json": cluster(cid, "acme/jdbc:15.4", state="RUNNING"),
              f"{cid}/driver/log4j-active.log": "\n".join(LOG4J_START + [
                  "26/12/07 06:05:12 ERROR Executor: Exception in task 0.0 in stage 1.0 (TID 1)",
                  "java.lang.ClassNotFoundException: com.mysql.cj.jdbc.Driver",
                  "\tat java.base/java.net.URLClassLoader.findClass(URLClassLoader.java:445)"])})
    # -- registries ------------------------------------------------------------------------------
    cid = "1207-060111-ratelim1"
    msg = ("Failed to pull docker image library/ubuntu:22.04: 429 Too Many Requests - Server message: toomanyrequests: "
           "You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: "
           "https://www.docker.com/increase-rate-limit")
    write("rec-rate-limit", "rate-limit",
          "registry answer verbatim, placed in DOCKER_IMAGE_PULL_FAILURE's message (the code is assumed)",
          "github.com/linz/topo-workflows/pull/129", {
              "cluster.json": cluster(cid, "ubuntu:22.04", code="DOCKER_IMAGE_PULL_FAILURE", message=msg),
              "events.json": events({"type": "CREATING"}, terminating("DOCKER_IMAGE_PULL_FAILURE", msg))})
    cid = "1207-060112-ecrtag01"
    msg = ("Failed to pull docker image 123456789012.dkr.ecr.us-east-1.amazonaws.com/notebook-runner:latest: "
           "manifest for 123456789012.dkr.ecr.us-east-1.amazonaws.com/notebook-runner:latest not found: "
           "manifest unknown: Requested image not found")
    write("rec-manifest-ecr", "manifest-unknown",
          "registry answer verbatim (account id filler), in DOCKER_IMAGE_PULL_FAILURE's message",
          "github.com/aws-samples/sagemaker-run-notebook/issues/33", {
              "cluster.json": cluster(cid, "123456789012.dkr.ecr.us-east-1.amazonaws.com/notebook-runner:latest",
                                      code="DOCKER_IMAGE_PULL_FAILURE", message=msg)})
    cid = "1207-060113-gartag01"
    msg = ("Failed to pull docker image europe-west1-docker.pkg.dev/acme-prod/dcs/etl:2.4.1: manifest for "
           "europe-west1-docker.pkg.dev/acme-prod/dcs/etl:2.4.1 not found: manifest unknown: Failed to fetch \"2.4.1\"")
    write("rec-manifest-gar", "manifest-unknown", "VARIANT: another registry (Google Artifact Registry)",
          "github.com/aws-samples/sagemaker-run-notebook/issues/33 (pattern); registry varied", {
              "cluster.json": cluster(cid, "europe-west1-docker.pkg.dev/acme-prod/dcs/etl:2.4.1",
                                      code="DOCKER_IMAGE_PULL_FAILURE", message=msg),
              "events.json": events({"type": "CREATING"}, terminating("DOCKER_IMAGE_PULL_FAILURE", msg))})
    cid = "1207-060114-acr00001"
    msg = ("Failed to pull docker image ugsampleacr.azurecr.io/mssampleaksapplication:v1: Error response from daemon: "
           "Get https://ugsampleacr.azurecr.io/v2/mssampleaksapplication/manifests/v1: unauthorized: authentication required")
    write("rec-acr-unauthorized", "registry-unauthorized",
          "ACR's answer verbatim, in IMAGE_PULL_PERMISSION_DENIED's message",
          "github.com/dotnet/docs/issues/13401; github.com/Azure/acr/issues/359", {
              "cluster.json": cluster(cid, "ugsampleacr.azurecr.io/mssampleaksapplication:v1",
                                      code="IMAGE_PULL_PERMISSION_DENIED", message=msg)})
    cid = "1207-060115-ecrauth1"
    msg = ("Failed to pull docker image 695137853892.dkr.ecr.ap-northeast-1.amazonaws.com/echo:latest: Error response from "
           "daemon: Get https://695137853892.dkr.ecr.ap-northeast-1.amazonaws.com/v2/echo/manifests/latest: no basic auth credentials")
    write("rec-ecr-no-creds", "ecr-no-creds",
          "VARIANT registry: ECR without credentials (line verbatim from the ECR credential helper threads)",
          "github.com/awslabs/amazon-ecr-credential-helper/issues/14 (the line); .../issues/76 (the registry and image)", {
              "cluster.json": cluster(cid, "695137853892.dkr.ecr.ap-northeast-1.amazonaws.com/echo:latest",
                                      code="IMAGE_PULL_PERMISSION_DENIED", message=msg)})
    cid = "1207-060116-denied01"
    write("rec-pull-denied-bare", "pull-denied",
          "only the termination code and a short message (what the UI shows without the registry's words)",
          "dcs-facts.md (termination codes)", {
              "cluster.json": cluster(cid, "registry.acme.io/dcs/base:15.4", code="IMAGE_PULL_PERMISSION_DENIED",
                                      message="Failed to pull the docker image registry.acme.io/dcs/base:15.4")})
    cid = "1207-060117-nospace1"
    msg = ("Failed to pull docker image nvcr.io/nvidia/nemo:v0.11: failed to register layer: Error processing tar file"
           "(exit status 1): write /opt/conda/lib/python3.6/site-packages/torch/lib/libtorch.so: no space left on device")
    write("rec-no-space", "no-space", "docker's answer verbatim in DOCKER_IMAGE_PULL_FAILURE's message (code assumed)",
          "github.com/NVIDIA-NeMo/Speech/issues/1029", {
              "cluster.json": cluster(cid, "nvcr.io/nvidia/nemo:v0.11", code="DOCKER_IMAGE_PULL_FAILURE", message=msg)})
    cid = "1207-060118-timeout1"
    msg = "Failed to launch spark container on instance i-0a1b2c3d4e5f. Exception: Container setup has timed out"
    write("rec-setup-timeout", "container-setup-timeout",
          "7.8 GB image from ECR: the internal error message verbatim (instance id filler; code assumed)",
          "github.com/databricks/containers/issues/142", {
              "cluster.json": cluster(cid, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/big:1",
                                      code="CONTAINER_LAUNCH_FAILURE", message=msg, type_="SERVICE_FAULT",
                                      instance_id="i-0a1b2c3d4e5f"),
              "events.json": events({"type": "CREATING"}, terminating("CONTAINER_LAUNCH_FAILURE", msg, "SERVICE_FAULT"))})
    cid = "1207-060119-arm64001"
    write("rec-arm64-image", "wrong-os", "an image built on an arm64 laptop: the termination code alone",
          "dcs-facts.md (termination codes; What a custom image must contain: linux/amd64 only)", {
              "cluster.json": cluster(cid, "acme/dcs:15.4-laptop", code="DOCKER_INVALID_OS_EXCEPTION",
                                      message="The docker image is not a valid linux/amd64 image")})
    # -- init scripts ---------------------------------------------------------------------------
    def init_case(case: str, expected: str, note: str, source: str, cid: str, name: str,
                  lines: list[str], status: str = "FAILED_EXECUTION") -> None:
        dest = f"/Workspace/Users/someone@example.com/{name}"
        msg = f"Cluster scoped init script {dest} failed: Script exit status is non-zero"
        log_name, log_text = init_log(cid, name, lines)
        write(case, expected, note, source, {
            "cluster.json": cluster(cid, "acme/dbr:15.4", code="INIT_SCRIPT_FAILURE", message=msg,
                                    instance_id="i-0f1e2d3c"),
            "events.json": events({"type": "CREATING"}, {"type": "INIT_SCRIPTS_STARTED"},
                                  init_finished(dest, status, "Script exit status is non-zero"),
                                  terminating("INIT_SCRIPT_FAILURE", msg)),
            log_name: log_text})

    init_case("rec-init-pip", "pip-no-distribution", "init script stderr (pip lines verbatim from the thread)",
              "github.com/databricks/genai-cookbook/pull/13", "1207-060120-initpip1", "install-deps.sh", [
                  "ERROR: Could not find a version that satisfies the requirement install (from versions: none)",
                  "ERROR: No matching distribution found for install"])
    init_case("rec-init-apt", "apt-no-package", "init script stderr (apt lines verbatim)",
              "github.com/docker/docs/issues/15593", "1207-060121-initapt1", "apt.sh", [
                  "Reading package lists...", "Building dependency tree...", "Reading state information...",
                  "E: Unable to locate package docker-ce-cli", "E: Unable to locate package containerd.io"])
    init_case("rec-init-dns", "dns-failure", "init script stderr: curl cannot resolve (line verbatim)",
              "github.com/bestswifter/macbootstrap/issues/38", "1207-060122-initdns1", "bootstrap.sh", [
                  "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current",
                  "curl: (6) Could not resolve host: raw.githubusercontent.com"])
    init_case("rec-init-permission", "init-permission", "init script stderr: a helper script without exec bit",
              "github.com/PacktPublishing/Event-Driven-Architecture-in-Golang/issues/4", "1207-060123-initprm1",
              "setup.sh", ["/usr/local/bin/docker-entrypoint.sh: /docker-entrypoint-initdb.d/1_create_monolith_db.sh: "
                           "/bin/bash: bad interpreter: Permission denied"])
    init_case("rec-init-glibc", "glibc-version", "init script stderr: a downloaded binary too new for the image",
              "github.com/roapi/roapi/issues/86", "1207-060124-initglb1", "roapi.sh", [
                  "roapi-http: /lib/x86_64-linux-gnu/libm.so.6: version `GLIBC_2.29' not found (required by roapi-http)"])
    init_case("rec-init-glibcxx", "glibc-version", "VARIANT: libstdc++ (GLIBCXX) instead of libc",
              "github.com/oxigraph/oxigraph/issues/723", "1207-060125-initgcx1", "oxigraph.sh", [
                  "/usr/local/bin/oxigraph: /usr/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.30' not found (required by /usr/local/bin/oxigraph)",
                  "/usr/local/bin/oxigraph: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by /usr/local/bin/oxigraph)"])
    init_case("rec-init-exec-format", "exec-format", "init script stderr: an arm64 binary (line verbatim)",
              "github.com/datahub-project/datahub/issues/6836", "1207-060126-initarm1", "tools.sh", [
                  "exec /bin/bash: exec format error"])
    init_case("rec-init-conda-path", "conda-path",
              "init script written for the old conda images (the path is the docs' old one)",
              "docs.databricks.com/clusters/custom-containers.html; dcs-facts.md (the old conda pip path)",
              "1207-060127-initcnd1", "pip.sh", [
                  "/Workspace/Users/someone@example.com/pip.sh: line 3: /databricks/conda/envs/dcs-minimal/bin/pip: No such file or directory"])
    init_case("rec-init-pkg-resources", "pkg-resources",
              "init script building pandas 1.5.3 from source after setuptools 82",
              "databricks/containers refs/pull/235 (4f063e1, 2026-03-03)", "1207-060128-initpkr1", "pandas.sh", [
                  "  Getting requirements to build wheel: started",
                  '  File "/tmp/pip-build-env-x1/overlay/lib/python3.11/site-packages/setup.py", line 19, in <module>',
                  "ModuleNotFoundError: No module named 'pkg_resources'"])
    cid = "1207-060129-initexit"
    dest = "dbfs:/appinsights/appinsights_logging_init.sh"
    msg = f"Cluster scoped init script {dest} failed: Script exit status is non-zero"
    write("rec-init-exit-only", "init-exec-failed",
          "the termination message verbatim, events only (no logs were delivered)",
          "github.com/AnalyticJeremy/Azure-Databricks-Monitoring/issues/11", {
              "cluster.json": cluster(cid, "acme/dbr:10.4", code="INIT_SCRIPT_FAILURE", message=msg,
                                      spark="10.4.x-scala2.12", instance_id="a49ae08872a14977949bdb02fe9dc364"),
              "events.json": {"events": [
                  {"cluster_id": cid, "timestamp": T0, "type": "INIT_SCRIPTS_FINISHED", "details": {"init_scripts": {
                      "cluster": [{"dbfs": {"destination": dest}, "status": "FAILED_EXECUTION",
                                   "error_message": "Script exit status is non-zero",
                                   "execution_duration_seconds": 2}], "reported_for_node": "10.0.1.5"}}},
                  {"cluster_id": cid, "timestamp": T0 + 1000, **terminating("INIT_SCRIPT_FAILURE", msg)}]}})
    cid = "1207-060130-initfch1"
    dest = "/Volumes/main/ops/scripts/setup.sh"
    msg = f"Cluster scoped init script {dest} failed: Failed to fetch the init script"
    write("rec-init-fetch", "init-fetch-failed", "an init script on a volume the owner cannot read (FAILED_FETCH)",
          "dcs-facts.md (Why a start fails: init script statuses)", {
              "cluster.json": cluster(cid, "acme/dbr:15.4", code="INIT_SCRIPT_FAILURE", message=msg),
              "events.json": events({"type": "INIT_SCRIPTS_STARTED"},
                                    init_finished(dest, "FAILED_FETCH", "Failed to fetch the init script"),
                                    terminating("INIT_SCRIPT_FAILURE", msg))})
    cid = "1207-060131-global01"
    write("rec-global-init", "global-init-failure", "a workspace global init script failed: code and message only",
          "dcs-facts.md (termination codes)", {
              "cluster.json": cluster(cid, "acme/dbr:15.4", code="GLOBAL_INIT_SCRIPT_FAILURE",
                                      message="Global init script install-agent.sh failed: Script exit status is non-zero")})
    # -- secrets, drivers, codes alone --------------------------------------------------------------
    cid = "1207-060132-secret01"
    write("rec-secret-purview", "secret-unresolved", "the reason JSON verbatim (SERVICE_FAULT)",
          "github.com/microsoft/Purview-ADB-Lineage-Solution-Accelerator/issues/76", {
              "cluster.json": cluster(cid, "acme/openlineage:10.4", code="SECRET_RESOLUTION_ERROR",
                                      message="Failed to fetch secrets referred to in Spark Conf", type_="SERVICE_FAULT",
                                      spark="10.4.x-scala2.12")})
    cid = "1207-060133-drvdown1"
    msg = ("Spark encountered an error on startup. This issue can be caused by invalid Spark configurations or "
           "malfunctioning init scripts. Please refer to the Spark driver logs to troubleshoot this issue, and contact "
           "Databricks if the problem persists. Internal error message: Spark error: Driver down cause: driver state "
           "change (exit code: 10)")
    write("rec-driver-down-rapids", "driver-down",
          "the error text verbatim (gpu-conda image on DBR 12.2); code SPARK_ERROR as the UI's 'Spark error' title",
          "github.com/rapidsai/deployment/issues/246", {
              "cluster.json": cluster(cid, "jacobtomlinson/rapids_databricks:23-06-nightly", code="SPARK_ERROR",
                                      message=msg, spark="12.2.x-gpu-scala2.12")})
    cid = "1207-060134-drvunrch"
    write("rec-driver-unreachable", "driver-unreachable", "the code alone, as users report 'driver down' with no logs",
          "github.com/judahrand/databricks-jobs docs/TerminationCode.md; dcs-facts.md (opaque driver down errors)", {
              "cluster.json": cluster(cid, "acme/dbr:15.4", code="DRIVER_UNREACHABLE", type_="CLOUD_FAILURE",
                                      message="Driver of the cluster is unreachable")})
    cid = "1207-060135-slowdl01"
    write("rec-slow-download", "slow-download", "the code alone", "dcs-facts.md (termination codes)", {
        "cluster.json": cluster(cid, "far.registry.example/dcs/big:1", code="SLOW_IMAGE_DOWNLOAD",
                                message="Image download was too slow", type_="CLOUD_FAILURE")})
    cid = "1207-060136-javahome"
    write("rec-java-home", "java-missing",
          "driver stderr: the JDK off the PATH (line verbatim from the Spark threads; code assumed)",
          "github.com/llnl/magpie/issues/297; github.com/dnafrance/vagrant-hadoop-spark-cluster/issues/3", {
              "cluster.json": cluster(cid, "acme/dbr-nojdk:15.4", code="CONTAINER_LAUNCH_FAILURE",
                                      message="Failed to launch spark container on instance i-0b1c2d3e"),
              f"{cid}/driver/stderr": "failed to launch org.apache.spark.deploy.master.Master:\n  JAVA_HOME is not set"})
    cid = "1207-060137-nopy3001"
    write("rec-python3-missing", "python3-missing",
          "driver stderr: the image has no /databricks/python3 (the line as a shell prints it; no public thread found)",
          "dcs-facts.md (What a custom image must contain: a virtualenv at /databricks/python3)", {
              "cluster.json": cluster(cid, "acme/slim:15.4", state="RUNNING"),
              f"{cid}/driver/stderr": "\n".join(STDERR_START + [
                  "/databricks/spark/scripts/start_python.sh: line 12: /databricks/python3/bin/python3: No such file or directory"])})
    # -- unknown, and not failed ------------------------------------------------------------------
    cid = "1207-060138-unknown1"
    msg = "Unexpected failure while waiting for the cluster to be ready."
    write("rec-unknown-internal", None,
          "UNKNOWN: INTERNAL_ERROR and a driver exception no signature describes: must say unknown",
          "github.com/judahrand/databricks-jobs docs/TerminationCode.md (INTERNAL_ERROR: contact support)", {
              "cluster.json": cluster(cid, "acme/dbr:15.4", code="INTERNAL_ERROR", message=msg, type_="SERVICE_FAULT"),
              f"{cid}/driver/log4j-active.log": "\n".join(LOG4J_START + [
                  "26/12/07 06:02:40 ERROR DriverDaemon$: XXX Fatal uncaught exception. Terminating driver.",
                  "java.lang.IllegalStateException: Promise already completed.",
                  "\tat scala.concurrent.Promise.complete(Promise.scala:53)"])})
    cid = "1207-060139-unknown2"
    write("rec-unknown-cloud", None,
          "UNKNOWN: a cloud launch failure (not an image problem; no signature): must say unknown",
          "kb.databricks.com/en_US/clusters/termination-reasons (cloud provider launch failures)", {
              "cluster.json": cluster(cid, "acme/dbr:15.4", code="CLOUD_PROVIDER_LAUNCH_FAILURE", type_="CLOUD_FAILURE",
                                      message="Instance launch failed: InsufficientInstanceCapacity",
                                      aws_api_error_code="InsufficientInstanceCapacity")})
    cid = "1207-060140-unknown3"
    write("rec-unknown-vscode-trace", None,
          "UNKNOWN: a pasted chauffeur stack trace without its cause line (the report's own words): must say unknown",
          "github.com/databricks/databricks-vscode/issues/102", {
              "pasted.txt": "\n".join([
                  "\tat com.databricks.spark.chauffeur.ExecContextState.processInternalMessage(ExecContextState.scala:316)",
                  "\tat com.databricks.spark.chauffeur.ChauffeurState.processDriverResponse(ChauffeurState.scala:427)",
                  "\tat com.databricks.rpc.ServerBackend.$anonfun$internalReceive$2(ServerBackend.scala:120)"])})
    cid = "1207-060141-running1"
    write("rec-still-running", None, "a cluster that is RUNNING and healthy: nothing failed, no cause may be named",
          "dcs-facts.md (Clusters API: states; events)", {
              "cluster.json": cluster(cid, "acme/dbr:15.4", state="RUNNING"),
              "events.json": events({"type": "CREATING"}, {"type": "STARTING"},
                                    {"type": "RUNNING", "details": {"current_num_workers": 0}},
                                    {"type": "DRIVER_HEALTHY"})})


if __name__ == "__main__":
    main()
