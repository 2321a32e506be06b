"""Which builder a build uses: `--builder auto|classic|buildkit` and `--secret` -> a choice.

`auto` (the default) builds with BuildKit when the Dockerfile needs it (`RUN --mount`, a
heredoc, `# syntax=`: model/buildkit.py `buildkit_reasons`) or a `--secret` is given, and a
BuildKit-capable docker CLI is found (adapters/buildkit.py `find_cli`); with the classic
builder (docker-py) otherwise. When BuildKit is needed (or asked for) and no CLI can do it,
one BuildError says why and what to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BuildError, UsageError
from ..model.buildkit import BUILDERS, SecretSpec, buildkit_reasons
from ..settings import DOCKER_CLI

if TYPE_CHECKING:
    from ..adapters.buildkit import DockerCli

__all__ = ["BuilderChoice", "INSTALL_HINT", "choose_builder"]

INSTALL_HINT = (
    "Install a docker CLI that builds with BuildKit: the buildx plugin (Docker's `docker-buildx-plugin` "
    "package, or the `docker-buildx` binary in ~/.docker/cli-plugins/), or, on Debian/Ubuntu, the "
    "`docker.io` package's client (`apt-get install docker.io`, /usr/bin/docker 20.10); set "
    f"{DOCKER_CLI}=/path/to/docker to name it.")


@dataclass(frozen=True)
class BuilderChoice:
    """The builder a build uses: `builder` ("classic" | "buildkit"), the CLI for BuildKit,
    `reasons` why BuildKit (empty when asked for by name or classic)."""

    builder: str
    cli: DockerCli | None = None
    reasons: tuple[str, ...] = ()


def choose_builder(requested: str, dockerfile: Path, secrets: list[SecretSpec]) -> BuilderChoice:
    """The builder for building DOCKERFILE with REQUESTED (`auto`, `classic`, `buildkit`).

    UsageError for an unknown name or `classic` with secrets; BuildError when BuildKit is
    needed and no capable docker CLI is found. A missing or unreadable Dockerfile chooses
    classic (the build itself then says what is wrong)."""
    if requested not in BUILDERS:
        raise UsageError(f"--builder must be one of {', '.join(BUILDERS)}, got {requested!r}")
    if requested == "classic":
        if secrets:
            raise UsageError("--secret needs BuildKit: the classic builder has no build secrets",
                             hint="Build with --builder buildkit (or auto).")
        return BuilderChoice("classic")
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    if requested == "auto":
        if text is None:
            return BuilderChoice("classic")
        reasons = tuple(buildkit_reasons(text, secrets=bool(secrets)))
        if not reasons:
            return BuilderChoice("classic")
    else:
        reasons = ()
    from ..adapters.buildkit import find_cli, probe_report  # subprocess probes only when BuildKit may run

    cli = find_cli()
    if cli is None:
        why = f"it uses {', '.join(reasons)}" if reasons else "--builder buildkit was asked for"
        tried = "; ".join(probe_report()) or "no docker CLI found"
        raise BuildError(f"This build needs BuildKit ({why}), but no docker CLI here can build with "
                         f"BuildKit (tried: {tried})", hint=INSTALL_HINT)
    return BuilderChoice("buildkit", cli, reasons)
