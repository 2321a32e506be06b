"""`dcs`: the notebook's build pipeline, headless, for CI/CD.

    dcs render NOTEBOOK [--name N] [--var K=V ...] [--out DIR]
    dcs build  NOTEBOOK -t TAG [-t TAG ...] [--push] [--locked] [--var K=V ...] ...
    dcs check  IMAGE [--runtime R] [--parity]
    dcs outdated NOTEBOOK [--name N] [--json]
    dcs runtimes [--json] [--update [--from URL_OR_DIR] [--out FILE]]
    dcs launch --spec FILE [--image REF | --lock LOCK] [--wait] [--profile P | --local] [--print]
    dcs why CLUSTER_ID [--local | --profile P] [--lock NOTEBOOK] [--json]   |   dcs why --from PATH
    dcs secrets put SCOPE KEY [--create-scope] | list [SCOPE] | create-scope SCOPE | delete SCOPE KEY
                                [--local | --profile P]   (a value from stdin or a hidden prompt)

This module only parses arguments and prints; the work is done by the library
(dcs_magic.ops.recipe: render_notebook, build_notebook, launch_spec, create_cluster; checks;
workspace), which knows nothing of the command line. Conventions:

- stdout carries only the result (context directories, the pinned reference or image id,
  the check report, the cluster id, the request JSON), so `REF=$(dcs build ...)` works;
  progress, warnings and errors go to stderr.
- Exit status: 0 success, 1 a dcs-magic error (message and hint on stderr, no traceback
  unless `--debug`) or a failed check/cluster, 2 bad usage (argparse's "dcs CMD: error: ..."
  or a UsageError: a bad argument value or combination found after parsing), 130 interrupted.
- Build contexts: `--out DIR` puts NAME's context in DIR/NAME. Without it, a cell's own
  `--context` is used, else `dcs-build/NAME`, both relative to the notebook's directory:
  the place the magics write to when the notebook runs in Jupyter (kernel cwd = the
  notebook's directory), so the notebook and `dcs` share one context.
- `%%init_script` cells are written verbatim to `<build root>/init-scripts/NAME.sh` by
  `dcs render`, ready for `databricks workspace import` or a COPY.
- Template variables: see dcs_magic.ops.notebook (`--var` > `DCS_VAR_<NAME>` > parameters cell).
- The lock file `<notebook stem>.dcs.lock.json` (dcs_magic.ops.lock) is written by every
  successful `dcs build`; `--locked` first checks that the rendered Dockerfile, the context
  files and the base image digest still match it, and fails listing what changed.
- `dcs launch --print` prints the clusters/create body exactly as `databricks clusters
  create --json @file` and `POST /api/2.1/clusters/create` take it. It refuses a literal
  registry password (it would land in CI logs) unless `--allow-literal-password`: use a
  `{{secrets/scope/key}}` reference, which the cluster resolves.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..settings import BUILD_ROOT, CLUSTER_TIMEOUT_S, PLATFORM, RUN_TIMEOUT_S, SECRET_PREFIX, VAR_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

__all__ = ["main", "make_parser"]

# `dcs --help` (and any usage error) imports argparse, this module and the settings only: the
# library is imported inside each command. The export kinds are therefore written out here; a
# unit test pins them to exports.EXPORT_KINDS.
EXPORT_KINDS = ("bundle", "terraform", "policy", "pool")
REGISTRY_KINDS = ("auto", "dockerhub", "acr", "ecr", "gar", "basic", "none")
"""`--registry-auth` (a unit test pins them to model.registry_auth.KINDS)."""
REGISTRY_AUTH_HELP = ("The registry's kind: sets its username convention (gar: _json_key, ecr: AWS) when "
                      "--username is not given, or leaves basic_auth out (none: a public image, or ECR through "
                      "an instance profile), and warns about what will not last (an ECR token expires after 12 "
                      "hours) or does not fit the image's host. Default auto: the kind the host says.")

USAGE = 2
"""The exit status of bad usage: argparse's errors and every `dcs_magic.errors.UsageError`."""


# -- argument parsing ---------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    """The `dcs` argument parser (every subcommand has --help)."""
    parser = argparse.ArgumentParser(
        prog="dcs",
        description="Build, check, push and launch Databricks Container Services images from a "
                    "notebook's %%dockerfile cells, headless (CI/CD).",
        epilog="Exit status: 0 ok, 1 error or failed check/cluster, 2 usage, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"dcs-magic {__version__}")
    parser.add_argument("--debug", action="store_true", help="Show full tracebacks on errors.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_render_parser, _build_parser, _check_parser, _outdated_parser, _launch_parser, _terminate_parser,
                _run_parser, _export_parser, _doctor_parser, _runtimes_parser, _why_parser, _secrets_parser):
        for sub in _leaves(add(commands)):
            # Also accepted after the subcommand; SUPPRESS keeps a top-level --debug intact.
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="Show full tracebacks on errors.")
    return parser


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """PARSER, or the subcommands of a command that has them (`dcs secrets put`)."""
    nested = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return [leaf for action in nested for leaf in action.choices.values()] if nested else [parser]


def parse_seconds(text: str) -> float:
    """A duration in seconds: a finite number > 0 (`nan`, `inf`, `-5` raise UsageError)."""
    import math

    from ..errors import UsageError

    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a number of seconds", hint="e.g. --timeout 600") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{text!r} is not a usable number of seconds: give a finite number above 0",
                         hint="e.g. --timeout 600")
    return value


def _seconds_arg(text: str) -> float:
    # argparse shows an ArgumentTypeError's text (a plain ValueError only as "invalid value").
    from ..errors import UsageError

    try:
        return parse_seconds(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _notebook_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", metavar="NOTEBOOK", help="The .ipynb file.")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help=f"Template variable (repeatable). Beats {VAR_PREFIX}<NAME> in the environment, "
                             "which beats the notebook's parameters cell (tagged `parameters`).")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="Write NAME's build context to DIR/NAME (default: the cell's --context, "
                             f"else {BUILD_ROOT}/NAME next to the notebook).")
    parser.add_argument("--allow-multiline-vars", action="store_true",
                        help=f"Let a --var / {VAR_PREFIX}<NAME> value with a newline into the Dockerfile "
                             "(each newline starts a new instruction; refused by default).")


def _render_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "render", help="Write build contexts from a notebook's cells.",
        description="Render the notebook's %%dockerfile and %%dcs_file cells into build contexts "
                    "and its %%init_script cells into files. Runs no notebook code: variables come "
                    f"from the parameters cell, {VAR_PREFIX}<NAME> and --var. Prints each context directory.")
    _notebook_args(parser)
    parser.add_argument("--name", default=None, help="Only this build context (default: every one).")
    parser.set_defaults(run=_cmd_render)
    return parser


def _build_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "build", help="Render, build (and push) a notebook's image; update its lock file.",
        description="Render NAME's build context, build it with the Docker engine, optionally push "
                    "every tag, and record the result in <notebook>.dcs.lock.json. Prints the pinned "
                    "reference (repo@sha256:...) of each pushed tag, or the image id without --push.")
    _notebook_args(parser)
    parser.add_argument("--name", default=None, help="Build context NAME (required when the notebook "
                                                     "has several %%dockerfile cells).")
    parser.add_argument("-t", "--tag", action="append", required=True, dest="tags", metavar="TAG",
                        help="Image tag, e.g. registry.example.com/team/app:1.0 (repeatable).")
    parser.add_argument("--push", action="store_true", help="Push every tag after the build.")
    parser.add_argument("--locked", action="store_true",
                        help="Fail (before building) when the rendered Dockerfile, the context files, "
                             "the build arguments or the base image digest differ from the lock file, or "
                             "the registry no longer serves the digest it recorded.")
    parser.add_argument("--no-registry-check", action="store_true",
                        help="With --locked: do not ask the registry for the recorded digest (the lock's "
                             "seal then only catches accidental edits).")
    parser.add_argument("--platform", default=PLATFORM,
                        help=f"Target platform (default {PLATFORM}, the only one DCS runs).")
    parser.add_argument("--no-cache", action="store_true", help="Do not use the engine's build cache.")
    parser.add_argument("--pull", action="store_true", help="Always pull a newer base image.")
    parser.add_argument("--target", default=None, help="Multi-stage target to build.")
    parser.add_argument("--build-arg", action="append", default=[], dest="build_args", metavar="K=V")
    parser.add_argument("--label", action="append", default=[], dest="labels", metavar="K=V")
    parser.add_argument("--builder", choices=("auto", "classic", "buildkit"), default="auto",
                        help="auto (default): BuildKit when the Dockerfile needs it (RUN --mount, heredocs, "
                             "# syntax=) or --secret is given, through a BuildKit-capable docker CLI "
                             "(DCS_DOCKER_CLI names one); the classic builder otherwise.")
    parser.add_argument("--secret", action="append", default=[], dest="secrets", metavar="id=NAME,env=VAR",
                        help="A build secret for RUN --mount=type=secret,id=NAME: id=NAME,env=VAR or "
                             "id=NAME,src=FILE (repeatable; BuildKit; the value is never stored).")
    parser.add_argument("--username", default=None,
                        help="Registry user for --push (default: Docker's own credentials).")
    parser.add_argument("--password-env", default=None, metavar="VAR",
                        help="Environment variable holding the registry password (with --username; "
                             "without it the password is prompted for on a terminal).")
    parser.add_argument("--progress", choices=("auto", "rich", "plain", "none"), default="auto",
                        help="Progress on stderr: rich bars on a terminal, plain lines otherwise (auto).")
    parser.set_defaults(run=_cmd_build)
    return parser


def _check_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "check", help="Check an image against the DCS requirements.",
        description="Run IMAGE locally and check it against the Databricks Container Services "
                    "requirements (java, bash, iproute2, procps, sudo, /databricks/python3, ...). "
                    "Prints the report; exit status 1 when a requirement fails.")
    parser.add_argument("image", metavar="IMAGE", help="Local image reference or id.")
    parser.add_argument("--runtime", default=None, help="Databricks Runtime line targeted, e.g. 15.4.")
    parser.add_argument("--parity", action="store_true",
                        help="Also compare /databricks/python3 (packages, Python, Java, locale) with the "
                             "runtime line's official image.")
    parser.set_defaults(run=_cmd_check)
    return parser


def _launch_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "launch", help="Create a cluster from a clusters/create JSON file.",
        description="Create a cluster from a clusters/create body. The image is --image, else the "
                    "pinned digest recorded in the lock (--lock), else the file's docker_image.url. "
                    "Prints the cluster id.")
    parser.add_argument("--spec", required=True, metavar="FILE", help="JSON file with a clusters/create body.")
    parser.add_argument("--image", default=None, help="docker_image.url to use (pin it: repo@sha256:...).")
    parser.add_argument("--lock", default=None, metavar="LOCK",
                        help="A .dcs.lock.json file, or the notebook whose lock to use: its pushed, "
                             "pinned image becomes docker_image.url (once the registry confirms the "
                             "recorded digest) and the launched body is recorded in it.")
    parser.add_argument("--no-registry-check", action="store_true",
                        help="With --lock: do not ask the registry for the recorded digest (the lock's "
                             "seal then only catches accidental edits).")
    parser.add_argument("--name", default=None, help="Lock entry NAME (default: the only one).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--profile", default=None, help="~/.databrickscfg profile (default: the "
                                                       "Databricks SDK's resolution, DATABRICKS_* first).")
    where.add_argument("--local", action="store_true",
                       help="Use the local preflight workspace (runs in this process, so it always waits).")
    parser.add_argument("--username", default=None,
                        help="docker_image.basic_auth.username to use instead of the spec file's.")
    parser.add_argument("--password-env", default=None, metavar="VAR",
                        help="Environment variable holding docker_image.basic_auth.password, instead of "
                             "the spec file's. (--local resolves {{secrets/scope/key}} from the variable "
                             f"{SECRET_PREFIX}<SCOPE>_<KEY>.)")
    parser.add_argument("--registry-auth", choices=REGISTRY_KINDS, default="auto", metavar="KIND",
                        help=f"{{{','.join(REGISTRY_KINDS)}}}. {REGISTRY_AUTH_HELP}")
    parser.add_argument("--wait", action="store_true",
                        help="Follow the cluster to RUNNING (exit 0) or TERMINATED/ERROR (exit 1).")
    parser.add_argument("--timeout", type=_seconds_arg, default=CLUSTER_TIMEOUT_S, metavar="S",
                        help=f"Seconds --wait waits (default {CLUSTER_TIMEOUT_S:g}, like the Databricks CLI).")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="Print the request JSON (for `databricks clusters create --json @file` or "
                             "the REST API) instead of creating a cluster.")
    parser.add_argument("--allow-literal-password", action="store_true",
                        help="Let --print output a literal docker_image.basic_auth.password.")
    parser.add_argument("--strict", action="store_true",
                        help="Refuse a spec with an unknown cluster field (default: warn, naming the closest field).")
    parser.set_defaults(run=_cmd_launch)
    return parser


def _terminate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "terminate", help="Terminate a cluster (clusters/delete).",
        description="Terminate a cluster; on the local preflight workspace this stops and removes "
                    "its driver container.")
    parser.add_argument("cluster_id", metavar="CLUSTER_ID", help="The id `dcs launch` printed.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--profile", default=None, help="~/.databrickscfg profile.")
    where.add_argument("--local", action="store_true", help="Use the local preflight workspace.")
    parser.set_defaults(run=_cmd_terminate)
    return parser


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dcs` console script; returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors, 0 for --help
    from ..errors import DcsError, UsageError  # after parsing: `--help` imports no library module

    previous = _on_sigterm_interrupt()
    try:
        return int(args.run(args) or 0)
    except DcsError as exc:
        if args.debug:
            raise
        _error(exc.short())
        # A UsageError is a bad argument found after parsing (`--var novalue`, `dcs export` with
        # neither --spec nor --lock): bad usage, exit 2 as argparse's own errors.
        return USAGE if isinstance(exc, UsageError) else 1
    except _Terminated:
        _error("terminated (SIGTERM)")
        return 143
    except BrokenPipeError:  # `dcs runtimes --constraints KEY | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the same clean-up runs (a cluster being waited
    for is terminated, build containers removed), then exit status 143."""


def _on_sigterm_interrupt() -> Any:
    """Make SIGTERM interrupt like Ctrl-C (main thread only); the previous handler, or None."""
    def interrupt(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a thread): leave it
        return None


def _error(text: str) -> None:
    print(f"dcs: {text}", file=sys.stderr, flush=True)


def _warn(text: str) -> None:
    print(f"Warning: {text}", file=sys.stderr, flush=True)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _out(text: str) -> None:
    print(text, flush=True)


# -- render ------------------------------------------------------------------------------------


def _variables(args: argparse.Namespace) -> dict[str, str]:
    from ..ops.notebook import parse_vars

    return parse_vars(args.var)


def _cmd_render(args: argparse.Namespace) -> int:
    from ..ops.recipe import render_notebook

    rendered = render_notebook(args.notebook, name=args.name, variables=_variables(args), out=args.out,
                               warn=_warn, allow_multiline_vars=args.allow_multiline_vars)
    for context in rendered.contexts:
        _out(str(context.context_dir))
    for path in rendered.init_scripts:
        _out(str(path))
    return 0


# -- build -------------------------------------------------------------------------------------


def _cmd_build(args: argparse.Namespace) -> int:
    from ..ops.credentials import registry_password
    from ..ops.notebook import check_overrides, read_notebook
    from ..ops.recipe import build_notebook
    from .terminal import progress_sink

    # The notebook and its --var names first, then the password: a prompt (or a usage error)
    # comes before any work, and nobody types a password for a build refused anyway.
    notebook = read_notebook(args.notebook)
    variables = _variables(args)
    check_overrides(notebook, variables)
    password = registry_password(args.username, args.password_env) if args.push else None
    built = build_notebook(
        notebook, tags=args.tags, name=args.name, push=args.push, variables=variables,
        locked=args.locked, out=args.out, platform=args.platform, build_args=args.build_args,
        labels=args.labels, no_cache=args.no_cache, pull=args.pull, target=args.target,
        builder=args.builder, secrets=args.secrets, username=args.username, password=password,
        progress=lambda kind: progress_sink(args.progress),
        warn=_warn, allow_multiline_vars=args.allow_multiline_vars, registry_check=not args.no_registry_check)
    for line in built.references:
        _out(line)
    return 0


# -- check -------------------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    from ..ops.check import check
    from .terminal import print_check_report

    report = check(args.image, runtime=args.runtime, parity=args.parity)
    print_check_report(report, sys.stdout)
    return 0 if report.ok else 1


# -- outdated ----------------------------------------------------------------------------------


def _outdated_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "outdated", help="Say whether the base image tags in a notebook's lock moved.",
        description="For each image in <notebook>.dcs.lock.json, ask the registry whether the base tag still "
                    "serves the digest the build recorded. When it moved, read both images from the registry "
                    "(manifest and config; nothing is pulled or run), say what changed that matters on "
                    "Databricks (platform, Python, JDK, OS, environment, pins) and print the line that "
                    "updates the lock. Exit status: 0 up to date, 1 a base tag moved (or the lock records no "
                    "base digest, or the tag is gone), 2 a registry could not be asked.")
    parser.add_argument("notebook", metavar="NOTEBOOK", help="The .ipynb file (or its .dcs.lock.json).")
    parser.add_argument("--name", default=None, help="Only this lock entry (default: every one).")
    parser.add_argument("--json", action="store_true",
                        help="Print a JSON object: status, exit_code and per image its status, digests, "
                             "changes, notes and update line.")
    parser.add_argument("--timeout", type=_seconds_arg, default=None, metavar="S",
                        help="Seconds to wait for each registry answer (default 30).")
    parser.set_defaults(run=_cmd_outdated)
    return parser


def _cmd_outdated(args: argparse.Namespace) -> int:
    import json

    from ..ops.outdated import outdated

    report = outdated(args.notebook, name=args.name, timeout=args.timeout)
    if args.json:
        _out(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            _out(line)
    return report.exit_code


# -- runtimes ----------------------------------------------------------------------------------


def _runtimes_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "runtimes", help="List the Databricks Runtime lines dcs-magic knows (--update refreshes their pins).",
        description="The known Databricks Runtime lines, LTS first: Python, JDK, Ubuntu, Spark, "
                    "whether Container Services supports them and when their support ends, and where "
                    "the package pins come from. --update reads Databricks' published constraints "
                    "(github.com/databricks/environments: one public download, no credentials) and "
                    "writes them where dcs-magic reads them.")
    parser.add_argument("--json", action="store_true", help="Print a JSON list of objects instead "
                        "(each with the pins' source and date).")
    parser.add_argument("--update", action="store_true", help="Refresh the pins from databricks/environments.")
    parser.add_argument("--constraints", metavar="KEY", default=None,
                        help="Print a runtime key's (or line's) pins as a pip constraints file "
                             "(pip install -c constraints.txt ...).")
    parser.add_argument("--from", dest="source", metavar="URL_OR_DIR", default=None,
                        help="With --update: a checkout of the repository, or a tarball URL (default: "
                             "GitHub's archive of its main branch).")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="With --update: where to write (default: $DCS_RUNTIME_PINS, else "
                             "~/.local/share/dcs-magic/runtime-pins.json).")
    parser.set_defaults(run=_cmd_runtimes)
    return parser


def _cmd_runtimes(args: argparse.Namespace) -> int:
    import json

    from ..errors import UsageError

    if args.update:
        from ..ops.runtimes import update

        for line in update(args.source, out=args.out).lines_of_text():
            _note(line)
        return 0
    if args.source or args.out:
        raise UsageError("--from and --out go with --update", hint="dcs runtimes --update --from DIR")
    from ..model.pins import STALE_DAYS
    from ..model.runtime import data_age_days, pin_data, pins_for, table

    if args.constraints:
        found = pins_for(args.constraints)
        if found is None:
            raise UsageError(f"no pins for {args.constraints!r}",
                             hint="name a runtime key or line (dcs runtimes lists them); dcs runtimes --update "
                                  "refreshes the data")
        print(f"# Databricks Runtime {found.key}: /databricks/python3 (Python {found.python or '?'})")
        print(f"# from {found.origin}")
        for name, version in sorted(found.pins.items()):
            print(f"{name}=={version}")
        return 0

    data = pin_data()
    rows = table()
    if args.json:
        print(json.dumps([{**row, "source": data.source, "commit": data.commit, "date": data.date or data.read}
                          for row in rows], indent=2))
        return 0
    header = ("line", "lts", "python", "java", "ubuntu", "spark", "dcs", "supported", "end_of_support")
    cells = [[str(r["name"]), "yes" if r["lts"] else "no", str(r["python_patch"] or r["python"]),
              "/".join(map(str, r["java_installed"])) + f" (default {r['java']})", str(r["ubuntu"]),
              str(r["spark"]), "yes" if r["dcs"] else "no", "yes" if r["supported"] else "no",
              str(r["end_of_support"] or "not set")] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    for row in [list(header), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\nPackage pins: {data.describe()}")
    age = data_age_days()
    if age is not None and age > STALE_DAYS:
        _warn(f"the pin data is {age} days old; refresh it with: dcs runtimes --update")
    for item in rows:
        if item.get("inferred_from"):
            _warn(f"{item['name']}: {item['notes']}")
    return 0


# -- launch ------------------------------------------------------------------------------------


def _cmd_launch(args: argparse.Namespace) -> int:
    import json

    from ..errors import SpecError
    from ..ops.recipe import create_cluster, launch_spec

    plan = launch_spec(args.spec, image=args.image, lock=args.lock, name=args.name, username=args.username,
                       password_env=args.password_env, warn=_warn, strict=args.strict,
                       registry_check=not args.no_registry_check, registry_auth=args.registry_auth)
    if args.print_only:
        if plan.literal_password and not args.allow_literal_password:
            raise SpecError(
                f"{args.spec}: docker_image.basic_auth.password is a literal password; --print would "
                "write it to stdout (and CI logs)", field="docker_image.basic_auth.password",
                hint="store it in a secret scope and write \"{{secrets/<scope>/<key>}}\" instead, or "
                     "pass --allow-literal-password")
        _out(json.dumps(plan.body, indent=2))
        return 0
    if plan.literal_password:
        _warn("docker_image.basic_auth.password is a literal password in the spec file; prefer a "
              "{{secrets/<scope>/<key>}} reference")

    def created(cluster_id: str, url: str | None) -> None:
        # --local: the local workspace (and its pages) end with this command, its cluster does
        # not, so no URL is printed; the cluster is followed to its state here instead.
        _note(f"Created cluster {cluster_id}: {url}" if url else
              f"Created cluster {cluster_id} on the local preflight workspace (driver container "
              f"dcs-local-{cluster_id})")
        _out(cluster_id)

    # The local workspace runs in this process, so it always waits. Waiting is
    # Workspace.wait_for_cluster, i.e. the one ClusterFollower at the workspace's own pace
    # (as the launch form follows). A ClusterError (TERMINATED/ERROR: code, message, hint)
    # reaches main(): exit 1.
    wait = args.wait or args.local
    cluster_id = create_cluster(plan, profile=args.profile, local=args.local, wait=wait, timeout=args.timeout,
                                on_created=created, on_state=_print_state, warn=_warn,
                                on_failed=lambda ws, cid: _print_why(ws, cid, args.lock or plan.lock_file))
    if wait:
        _note(f"Cluster {cluster_id} is RUNNING")
    if args.local:
        from ..preflight import LABEL

        _note(f"It keeps running after this command: its state with `dcs why {cluster_id} --local`, its "
              f"container with `docker ps --filter label={LABEL}`; end it with "
              f"`dcs terminate {cluster_id} --local`")
    return 0


def _print_why(workspace: Any, cluster_id: str | None, notebook: Any = None, result: Any = None) -> None:
    """After a failed start or run: `dcs why`'s diagnosis on stderr (never a second error)."""
    from ..errors import DcsError
    from ..ops.why import dockerfiles_of, why_cluster, why_run

    try:
        cells = dockerfiles_of(notebook) if notebook and str(notebook).endswith(".ipynb") else []
    except DcsError:
        cells = []
    try:
        found = (why_run(workspace, result, dockerfiles=cells) if result is not None else
                 why_cluster(workspace, str(cluster_id), dockerfiles=cells))
    except DcsError as exc:
        _warn(f"the failure could not be diagnosed ({exc.message}); try `dcs why {cluster_id}` later")
        return
    _note("Why it failed" + (f" (dcs why {cluster_id}):" if cluster_id else ":"))
    for line in found.lines():
        _note(f"  {line}")


def _cmd_terminate(args: argparse.Namespace) -> int:
    from ..adapters.workspace import open_workspace

    with open_workspace(args.profile, local=args.local) as workspace:
        workspace.terminate_cluster(args.cluster_id)
    _note(f"Cluster {args.cluster_id} is terminating")
    return 0


def _print_state(info: dict[str, Any]) -> None:
    message = info.get("state_message") or ""
    _note(f"  {info.get('state')}{': ' + message if message else ''}")


# -- run / export / doctor (jobs, exports and readiness; the work is in jobs, exports, doctor) ----


def _where_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--profile", default=None, help="~/.databrickscfg profile (default: the Databricks "
                                                       "SDK's resolution, DATABRICKS_* first).")
    where.add_argument("--local", action="store_true", help="Use the local preflight workspace.")


def _run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "run", help="Run a Python file or notebook once on a job cluster in the image.",
        description="Submit a one-time run (jobs/runs/submit) whose new job cluster is the spec "
                    "(docker_image included, validated like a cluster). Prints the run page URL; with "
                    "--wait (always on --local) follows the run and prints its state and output. "
                    "Exit 0 on SUCCESS, 1 otherwise.")
    parser.add_argument("--spec", required=True, metavar="FILE", help="JSON file with a clusters/create body.")
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--python-file", default=None, metavar="PATH",
                      help="Python file to run: a file on this machine (uploaded first, to "
                           "/Workspace/Users/<you>/.dcs/runs/<hash>/), or /Workspace/..., dbfs:/..., "
                           "/Volumes/..., or file:/... inside the image.")
    task.add_argument("--notebook", default=None, metavar="PATH", help="Workspace notebook path to run.")
    parser.add_argument("--parameters", nargs=argparse.REMAINDER, default=[], metavar="P",
                        help="The Python file's arguments (options such as --day included), or the "
                             "notebook's NAME=VALUE parameters. Give it last: it takes the rest of the line.")
    parser.add_argument("--image", default=None, help="docker_image.url to use (pin it: repo@sha256:...).")
    parser.add_argument("--run-name", default=None, help="Name of the run (default: dcs run FILE).")
    _where_args(parser)
    parser.add_argument("--wait", action="store_true", help="Follow the run to its end and print its output.")
    parser.add_argument("--timeout", type=_seconds_arg, default=RUN_TIMEOUT_S, metavar="S",
                        help=f"Seconds --wait waits (default {RUN_TIMEOUT_S:g}).")
    parser.add_argument("--strict", action="store_true",
                        help="Refuse a spec with an unknown cluster field (default: warn, naming the closest field).")
    parser.set_defaults(run=_cmd_run)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from ..adapters.workspace import open_workspace
    from ..model.exports import export_spec
    from ..model.jobs import RunProgress
    from ..model.spec import ClusterSpec
    from ..ops.runs import follow_run, python_file_source, submit_run

    # A local file that is not there is bad usage (UsageError: exit 2), before anything is asked.
    source = python_file_source(args.python_file) if args.python_file else None
    spec = export_spec(ClusterSpec.load(args.spec, strict=args.strict, warn=_warn), image=args.image)
    with open_workspace(args.profile, local=args.local) as workspace:
        run_id = submit_run(workspace, spec, python_file=source, notebook=args.notebook,
                            parameters=args.parameters, run_name=args.run_name, on_upload=lambda up: _note(str(up)))
        run = workspace.get_run(run_id)
        # --local: the workspace (and the run's page) end with this command: no URL that dies.
        _out(RunProgress(run_id, None if args.local else workspace.run_url(run)).heading())
        if not (args.wait or args.local):
            return 0
        # The state changes as %dcs_run shows them (RunStateChange.line), on stderr.
        result = follow_run(workspace, run_id, timeout_s=args.timeout, first=run,
                            on_change=lambda change: _note(f"  {change.line()}"))
        _out(f"State: {result.outcome}")
        if result.output:
            _out(result.shown_output.rstrip("\n"))
        if not result.ok:
            _error(result.to_error().short())
            _print_why(workspace, None, result=result)
            return 1
    return 0


def _export_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "export", help="Export a spec as a bundle, Terraform, a cluster policy or an instance pool.",
        description="Write the cluster spec (or a lock's recorded cluster with its pinned image) as a "
                    "Databricks Asset Bundle resources YAML, Terraform HCL, a cluster policy JSON or an "
                    "instance pool JSON. Secret references stay references; a literal password is refused.")
    parser.add_argument("kind", choices=EXPORT_KINDS, help="What to write.")
    parser.add_argument("--spec", default=None, metavar="FILE", help="JSON file with a clusters/create body.")
    parser.add_argument("--lock", default=None, metavar="NOTEBOOK",
                        help="A notebook (or its .dcs.lock.json): its pinned image becomes docker_image.url; "
                             "without --spec, the cluster it recorded is exported.")
    parser.add_argument("--no-registry-check", action="store_true",
                        help="With --lock: do not ask the registry for the recorded digest (the lock's "
                             "seal then only catches accidental edits).")
    parser.add_argument("--name", default=None, help="Lock entry NAME (default: the only one).")
    parser.add_argument("--out", default=None, metavar="FILE", help="Write to FILE instead of stdout.")
    parser.add_argument("--registry-auth", choices=REGISTRY_KINDS, default="auto", metavar="KIND",
                        help=f"{{{','.join(REGISTRY_KINDS)}}}. {REGISTRY_AUTH_HELP}")
    parser.add_argument("--strict", action="store_true",
                        help="Refuse a spec with an unknown cluster field (default: warn, naming the closest field).")
    parser.set_defaults(run=_cmd_export)
    return parser


def _cmd_export(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..model.exports import export, export_spec
    from ..model.spec import ClusterSpec

    if not args.spec and not args.lock:
        raise UsageError("dcs export needs --spec FILE or --lock NOTEBOOK",
                         hint="--spec cluster.json (a clusters/create body), or --lock notebook.ipynb")
    spec = ClusterSpec.load(args.spec, strict=args.strict, warn=_warn) if args.spec else None
    image, recorded = None, None
    if args.lock:
        from ..ops.recipe import read_lock_entry

        lock_file, lock, name = read_lock_entry(args.lock, args.name)
        if not args.no_registry_check:  # an export is a launch later: trust the digest as a launch does
            from ..ops.lock import verify_pushed

            verify_pushed(lock_file, name, lock.images[name], warn=_warn)
        image, recorded = lock.images[name].pinned, lock.images[name].cluster
    from ..model.registry_auth import apply

    exported, notes = apply(export_spec(spec, image=image, lock_cluster=recorded), args.registry_auth)
    for note in notes:
        _warn(note)
    text = export(args.kind, exported)
    if args.out:
        from pathlib import Path

        from ..ops.context import write_file

        path = Path(args.out)
        write_file(path.parent, path.name, text)
        print(f"Wrote {path}", file=sys.stderr, flush=True)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def _why_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "why", help="Why a cluster start or run failed: the cause, the evidence and the fix.",
        description="Diagnose a failed start: from the workspace (CLUSTER_ID: its termination reason, events "
                    "and the logs cluster_log_conf delivered to a volume or DBFS), or from what was downloaded "
                    "or pasted (--from: a clusters/get JSON, an events JSON, cluster logs, a single log file). "
                    "Prints the most likely cause, the evidence lines, the fix and the local check that "
                    "catches it. Exit 0 when a cause is named (or nothing failed), 1 when it is unknown.")
    parser.add_argument("cluster_id", nargs="?", metavar="CLUSTER_ID", help="The cluster to explain.")
    parser.add_argument("--from", dest="source", metavar="PATH",
                        help="A folder or a file with the cluster's JSON, events or logs (instead of CLUSTER_ID).")
    _where_args(parser)
    parser.add_argument("--lock", default=None, metavar="NOTEBOOK",
                        help="The notebook that built the image: the fix names its %%%%dockerfile cell and line.")
    parser.add_argument("--json", action="store_true", help="Print a JSON object (cause, code, evidence, fix, "
                        "confidence, where, notes).")
    parser.set_defaults(run=_cmd_why, parser=parser)
    return parser


def _cmd_why(args: argparse.Namespace) -> int:
    import json

    from ..ops.why import dockerfiles_of, why_cluster, why_from

    if bool(args.cluster_id) == bool(args.source):
        args.parser.error("give a CLUSTER_ID or --from PATH (one of them)")
    if args.source and (args.local or args.profile):
        args.parser.error("--from reads files: --local and --profile are for a CLUSTER_ID")
    cells = dockerfiles_of(args.lock) if args.lock else []
    if args.source:
        found = why_from(args.source, dockerfiles=cells)
    else:
        from ..adapters.workspace import open_workspace

        with open_workspace(args.profile, local=args.local) as workspace:
            found = why_cluster(workspace, args.cluster_id, dockerfiles=cells)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        for line in found.lines():
            print(line)
    return found.exit_code


def _doctor_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "doctor", help="Check the workspace is ready for Container Services.",
        description="One line per check: the workspace answers, the credentials work (whose), Container "
                    "Services is enabled, the runtime and node types exist and support containers, and "
                    "the spec's registry answers from here with its credentials; and which Docker engine "
                    "builds would use (a warning when it does not answer). Exit 0 when all hold.")
    _where_args(parser)
    parser.add_argument("--spec", default=None, metavar="FILE",
                        help="A clusters/create JSON whose runtime, node types and registry to check.")
    parser.set_defaults(run=_cmd_doctor)
    return parser


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ..adapters.workspace import open_workspace
    from ..errors import ConfigError
    from ..model.results import CheckReport
    from ..model.spec import ClusterSpec
    from ..ops.doctor import doctor, engine_item, unconfigured
    from .terminal import print_check_report

    spec = ClusterSpec.load(args.spec) if args.spec else None
    try:
        workspace = open_workspace(args.profile, local=args.local)
    except ConfigError as exc:  # nothing configured is a failed check, not a crash
        report = unconfigured(exc)
    else:
        with workspace:
            report = doctor(workspace, spec)
    report = CheckReport(report.image, [*report.checks, engine_item()])  # where builds would run
    print_check_report(report, sys.stdout, rich=False)
    return 0 if report.ok else 1



# -- secrets -----------------------------------------------------------------------------------


def _secrets_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "secrets", help="Put and list secrets in the workspace's secret scopes (values never shown).",
        description="Secret scopes through the workspace's Secrets API (Databricks, or --local: the local "
                    "preflight workspace, whose scopes every dcs command and kernel of this user shares). A "
                    "cluster spec then names a value as {{secrets/SCOPE/KEY}}, e.g. as "
                    "docker_image.basic_auth.password. Values are read from standard input or a hidden "
                    "prompt, never from an argument, and no command prints them.")
    actions = parser.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    put = actions.add_parser(
        "put", help="Store a secret (the value from stdin, or a hidden prompt on a terminal).",
        description="Store a value under SCOPE/KEY, overwriting. The value is standard input when it is not "
                    "a terminal (read whole; one trailing newline is dropped), else a hidden prompt. As with "
                    "the Databricks CLI, the scope must exist unless --create-scope.")
    put.add_argument("scope", metavar="SCOPE")
    put.add_argument("key", metavar="KEY")
    put.add_argument("--create-scope", action="store_true", help="Create SCOPE first when it does not exist.")
    _where_args(put)
    put.set_defaults(run=_cmd_secrets_put)
    listing = actions.add_parser("list", help="List the scopes, or SCOPE's keys (names and times only).",
                                 description="Without SCOPE: the secret scopes. With SCOPE: its keys and when "
                                             "each was last put. Never a value.")
    listing.add_argument("scope", metavar="SCOPE", nargs="?", default=None)
    listing.add_argument("--json", action="store_true", help="Print the API's JSON objects instead.")
    _where_args(listing)
    listing.set_defaults(run=_cmd_secrets_list)
    create = actions.add_parser("create-scope", help="Create a secret scope.",
                                description="Create a Databricks-backed secret scope (its creator may manage it).")
    create.add_argument("scope", metavar="SCOPE")
    _where_args(create)
    create.set_defaults(run=_cmd_secrets_create_scope)
    delete = actions.add_parser("delete", help="Delete a secret.", description="Delete SCOPE/KEY.")
    delete.add_argument("scope", metavar="SCOPE")
    delete.add_argument("key", metavar="KEY")
    _where_args(delete)
    delete.set_defaults(run=_cmd_secrets_delete)
    return parser


def _cmd_secrets_put(args: argparse.Namespace) -> int:
    from ..adapters.workspace import open_workspace
    from ..ops.secrets import put_secret, read_secret_value

    value = read_secret_value(label=f"secret {args.scope}/{args.key}")  # before connecting: fail fast
    with open_workspace(args.profile, local=args.local) as workspace:
        stored = put_secret(workspace, args.scope, args.key, value, create_scope=args.create_scope)
    del value
    _note(stored.line())
    return 0


def _cmd_secrets_list(args: argparse.Namespace) -> int:
    import json
    import time

    from ..adapters.workspace import open_workspace
    from ..ops.secrets import secret_listing

    with open_workspace(args.profile, local=args.local) as workspace:
        items = secret_listing(workspace, args.scope)
    if args.json:
        _out(json.dumps(items, indent=2))
        return 0
    for item in items:
        if args.scope is None:
            _out(f"{item.get('name')}\t{item.get('backend_type') or ''}".rstrip())
        else:
            stamp = item.get("last_updated_timestamp")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(stamp) / 1000)) if stamp else ""
            _out(f"{item.get('key')}\t{when}".rstrip())
    return 0


def _cmd_secrets_create_scope(args: argparse.Namespace) -> int:
    from ..adapters.workspace import open_workspace

    with open_workspace(args.profile, local=args.local) as workspace:
        workspace.create_secret_scope(args.scope)
        _note(f"Created secret scope {args.scope} on {workspace.host}")
    return 0


def _cmd_secrets_delete(args: argparse.Namespace) -> int:
    from ..adapters.workspace import open_workspace

    with open_workspace(args.profile, local=args.local) as workspace:
        workspace.delete_secret(args.scope, args.key)
        _note(f"Deleted {args.scope}/{args.key} on {workspace.host}")
    return 0
