"""Remove the dcs-test containers and images a test created.

A `DockerCleanup` takes a snapshot of the engine's dcs-test objects when it is made; `run()`
removes those that appeared since (plus anything passed to `add()`), containers first,
images by tag (so a tag that shares its image with a session image only untags).

"dcs-test object": a container whose name or image name contains `dcs-test`; an image tag
or `repo@digest` reference containing `dcs-test`; an untagged image with a `dcs-test` label key. Containers are not
matched by label: build-step containers inherit the busybox base's label, and another
session's sweep must not kill a build that is running.

Caveat: the engine cannot say which client created an object, so two test sessions on
one engine at the same moment may remove each other's new dcs-test objects. Give objects
names from `unique()` and register them with `add()`; the sweep is the safety net.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

__all__ = ["MARK", "DockerCleanup", "is_marked"]

MARK = "dcs-test"


def is_marked(*names: str | None, labels: dict | None = None) -> bool:
    """True when any name or any label key mentions dcs-test."""
    return any(name and MARK in name for name in names) or any(MARK in key for key in labels or {})


def _containers(api: docker.APIClient) -> set[str]:
    found = set()
    for c in api.containers(all=True):
        if is_marked(c.get("Image"), *(c.get("Names") or [])):
            found.add(c["Id"])
    return found


def _image_tags(api: docker.APIClient) -> set[tuple[str, str | None]]:
    """(image id, tag) for marked tags; (image id, None) for marked untagged images."""
    found: set[tuple[str, str | None]] = set()
    for image in api.images():
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        found.update((image["Id"], t) for t in tags if MARK in t)
        # A pushed or pulled image also has `repo@sha256:...` references; they outlive its tags.
        found.update((image["Id"], d) for d in image.get("RepoDigests") or [] if MARK in d)
        if not tags and is_marked(labels=image.get("Labels")):
            found.add((image["Id"], None))
    return found


class DockerCleanup:
    """Snapshot at construction; `run()` removes what is new since then, and `add()`ed refs.

    `protected` holds image refs (session fixtures' images) that are never removed even
    when they were first created during the test.
    """

    def __init__(self, client: docker.DockerClient, protected: Iterable[str] = ()) -> None:
        self.client = client
        self.protected = protected  # read at run(): session fixtures may add to it later
        self.token = secrets.token_hex(3)
        self.explicit: list[str] = []
        self._containers = _containers(client.api)
        self._images = _image_tags(client.api)

    def unique(self, name: str) -> str:
        """A name unique to this test: dcs-test-<name>-<token> (lower case, tag-safe)."""
        return f"{MARK}-{name}-{self.token}".lower()

    def add(self, ref: str) -> str:
        """Remove this container (id or name) or image (ref or id) at the end; returns ref."""
        self.explicit.append(ref)
        return ref

    def _remove_container(self, ref: str) -> bool:
        try:
            self.client.api.remove_container(ref, force=True, v=True)
            return True
        except NotFound:
            return False

    def _remove_image(self, ref: str) -> bool:
        try:
            self.client.api.remove_image(ref)  # a tag of a still-tagged image only untags
            return True
        except NotFound:
            return False

    def run(self) -> list[str]:
        """Remove; return what was removed. Raises if something could not be removed."""
        protected = set(self.protected)
        explicit = [ref for ref in self.explicit if ref not in protected]
        new_containers = sorted(_containers(self.client.api) - self._containers)
        new_images = sorted(ref or image_id
                            for image_id, ref in _image_tags(self.client.api) - self._images)
        removed: list[str] = []
        errors: list[str] = []
        for kind, remove, refs in (
                ("container", self._remove_container, [*explicit, *new_containers]),
                ("image", self._remove_image, [*explicit, *new_images])):
            for ref in refs:
                if ref in removed or ref in protected:
                    continue
                try:
                    if remove(ref):
                        removed.append(ref)
                except APIError as exc:
                    errors.append(f"{kind} {ref}: {exc.explanation or exc}")
        if errors:
            raise RuntimeError("could not remove what the test made:\n" + "\n".join(errors))
        return removed


def remove_step_images(client: docker.DockerClient, where: str | Path) -> None:
    """A failed or interrupted build leaves its finished steps' images (build cache) behind:
    remove the untagged ones named in the build log `where`, or in every build log under the
    directory `where` (`**/.dcs/build-*.log`)."""
    path = Path(where)
    logs = sorted(path.glob("**/.dcs/build-*.log")) if path.is_dir() else [path]
    for log in logs:
        ids = re.findall(r"^ ---> ([0-9a-f]{12})$", log.read_text(), flags=re.MULTILINE)
        for image_id in reversed(ids):  # children before parents
            try:
                if not client.api.inspect_image(image_id).get("RepoTags"):
                    client.api.remove_image(image_id)
            except APIError:
                pass  # gone already, or a tagged/used image we must not touch
