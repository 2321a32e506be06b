"""`check(image)`: run an image locally and check it against the DCS requirements.

One container is run from the image with its entrypoint replaced by the probe, a POSIX `sh`
script that prints `key=value` facts; everything else is pure and lives in the model:

    model/probe.py          probe_script(), parse_probe(), facts_from_run(), java_version()
    model/requirements.py   evaluate(facts, image_attrs, runtime) -> CheckItems
    model/parity.py         the `parity=True` rows: /databricks/python3 against the runtime
                            line's official image

The container is run through `engine.Engine.run_container`, which always removes it, also on
errors, timeouts, KeyboardInterrupt and interpreter exit.

`image_python(image)` is the quick look the launch form takes when `%dcs_check` was not run:
only `/databricks/python3/bin/python3 --version`, remembered per image id in this process.
"""

from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING

from ..errors import DcsError, EngineError, UsageError
from ..model.probe import DATABRICKS_PYTHON, ProbeRun, facts_from_run, probe_script, python_version
from ..model.requirements import evaluate, parse_runtime
from ..model.results import CheckReport

if TYPE_CHECKING:  # the engine (and docker) are imported only when a check runs
    from ..adapters.engine import Engine

__all__ = ["check", "image_python", "run_probe"]

# Image id -> the Python of its /databricks/python3 (None: it has none that runs). An id names
# the image's content, so the answer never goes stale; a run that could not tell (engine
# trouble, timeout) is not remembered.
_PYTHONS: dict[str, str | None] = {}
_PYTHONS_LOCK = threading.Lock()


def run_probe(engine: Engine, image: str, *, timeout_s: float = 180.0,
              labels: dict[str, str] | None = None, parity: bool = False) -> ProbeRun:
    """Run probe_script() in one container from `image`; the container is always removed
    (the engine's `run_container` sees to it, also when the process exits meanwhile). The
    engine keeps the last CONTAINER_LOG_TAIL (1 MiB) of its output: an image that makes the
    probe print more is an EngineError, not a verdict on facts that were cut."""
    from ..adapters.engine import CONTAINER_LOG_TAIL

    run = engine.run_container(
        image, ["/bin/sh", "-c", probe_script(parity)], name=f"dcs-check-{secrets.token_hex(6)}",
        timeout_s=timeout_s, user="0", network_disabled=True,
        labels={"dcs_magic.check": "1", **(labels or {})})
    if run.timed_out:
        raise EngineError(f"The check of {image!r} did not finish within {timeout_s:.0f} s.",
                          host=engine.host, hint="Something in the image blocks the probe; run it "
                          "with docker run --entrypoint /bin/sh to investigate.")
    if run.truncated:  # its first facts were dropped: a verdict on the rest would be wrong
        raise EngineError(f"The check of {image!r} printed more than {CONTAINER_LOG_TAIL // 2**20} MiB "
                          "(the probe prints a few KB), so its output was cut.", host=engine.host,
                          hint="Something in the image prints when its shell or Python starts (a profile "
                          "script, a sitecustomize or .pth file); run /databricks/python3/bin/python3 -c "
                          "pass in it with docker run to see what.")
    return ProbeRun(run.stdout, run.stderr, run.exit_code, error=run.error)


def check(image: str, *, runtime: str | None = None, parity: bool = False,
          engine: Engine | None = None, timeout_s: float = 180.0) -> CheckReport:
    """Check a local image against the Databricks Container Services requirements.

    `runtime` is the Databricks Runtime line targeted (`15.4`, `15.4.x-scala2.12`, `18`); without
    it the Python version is reported with the runtime lines it fits. `parity` adds the
    comparison of /databricks/python3 with the line's official image (model/parity.py). `engine`: a
    connected `dcs_magic.adapters.engine.Engine` (default: `engine.connect()`, closed afterwards).
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
    # The runtime as given: parity compares with that exact key's pins when published
    # (`18.1.x-scala2.13`, `17.3.x-gpu-ml-scala2.13`), else its line's.
    target = runtime if line is not None and runtime else line
    return CheckReport(image=image, checks=evaluate(facts_from_run(run), attrs, target, parity=parity),
                       engine=engine.label)


def image_python(image: str, *, engine: Engine | None = None, timeout_s: float = 30.0) -> str | None:
    """The version of `/databricks/python3/bin/python3` in the local image `image` (`3.11.2`),
    or None when it cannot tell: the image is not local, has no such interpreter, or the
    engine does not answer.

    Why: the launch form's default runtime must fit the image's Python even when `%dcs_check`
    was not run (a runtime whose Python differs fails the start on Databricks, billed). So this
    costs one short container (`python3 --version`, network disabled, removed afterwards) the
    first time an image is asked about, and an inspect after that: the answer is kept per
    image id (its content) for the life of the process.
    """
    if engine is None:
        from ..adapters.engine import connect

        try:
            own = connect()
        except EngineError:
            return None
        with own:
            return image_python(image, engine=own, timeout_s=timeout_s)
    try:
        image_id = str(engine.inspect_image(image).get("Id") or "")
    except DcsError:  # not local (a remote pinned reference), or the engine refused
        return None
    with _PYTHONS_LOCK:
        if image_id and image_id in _PYTHONS:
            return _PYTHONS[image_id]
    try:
        run = engine.run_container(image, [DATABRICKS_PYTHON, "--version"], name=f"dcs-python-{secrets.token_hex(6)}",
                                   timeout_s=timeout_s, user="0", network_disabled=True,
                                   labels={"dcs_magic.check": "1"})
    except DcsError:
        return None
    if run.timed_out:
        return None
    found = python_version(f"{run.stdout}\n{run.stderr}") if run.exit_code == 0 and not run.error else None
    if image_id:
        with _PYTHONS_LOCK:
            _PYTHONS[image_id] = found
    return found
