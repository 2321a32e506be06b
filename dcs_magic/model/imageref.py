"""Docker image references: parse, validate and pin, with no I/O.

Follows the grammar of `distribution/reference`: `[domain[:port]/]path[:tag][@digest]`,
where the first path component is a domain when it contains `.` or `:` or is `localhost`.
Used by the linter (mutable tags), the cluster spec (docker_image.url), push (pinning)
and `runtime.line_of_image` (the Databricks Runtime line of a base image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "parse_or_none", "parse_reference"]

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. `domain` is None for Docker Hub short names."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """`domain/path` as written (no tag, no digest): what `docker push` takes as repo."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def registry(self) -> str:
        """The registry host, `docker.io` for Docker Hub names."""
        return self.domain or DOCKER_HUB

    @property
    def is_pinned(self) -> bool:
        return self.digest is not None

    def pinned(self, digest: str | None = None) -> str:
        """`repository@sha256:...`, the form clusters should pull."""
        digest = digest or self.digest
        if not digest:
            raise ValueError(f"{self} has no digest to pin")
        return f"{self.repository}@{digest}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageRef:
    """Parse an image reference or raise ValueError saying what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an image reference is empty; write it like registry.example.com/team/image:1.0")
    text = text.strip()
    if "://" in text:
        raise ValueError(f"{text!r} is a URL; an image reference has no scheme (drop {text.split('://')[0]}://)")
    match = _REFERENCE.match(text)
    if not match:
        lowered = text.lower()
        if lowered != text and _REFERENCE.match(_lower_path(text)):
            raise ValueError(f"{text!r}: repository names must be lowercase")
        raise ValueError(
            f"{text!r} is not a valid image reference; expected [registry[:port]/]name[:tag][@sha256:digest]"
        )
    domain, path = match["domain"], match["path"]
    if domain and not ("." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")):
        # `team/image`: the first component is a Docker Hub namespace, not a domain.
        path = f"{domain}/{path}"
        domain = None
    if len(path) > 255:
        raise ValueError(f"{text!r}: repository name is longer than 255 characters")
    return ImageRef(domain, path, match["tag"], match["digest"])


def _lower_path(text: str) -> str:
    head, sep, rest = text.partition("/")
    if sep and ("." in head or ":" in head):
        return f"{head}/{rest.lower()}"
    return text.lower()


def parse_or_none(text: str) -> ImageRef | None:
    """`parse_reference(text)`, or None for text that is no image reference (`$BASE`, `scratch`
    with a typo, ...): for callers that learn what they can from a reference and skip the rest."""
    try:
        return parse_reference(text)
    except ValueError:
        return None
