"""Secrets in cluster bodies, with no I/O: what a reference is, which keys hold secrets, masking.

A `{{secrets/<scope>/<key>}}` reference is a name the cluster resolves, so it is kept as it is
wherever a body is shown or written; a literal value under a secret-looking key (`password`,
`token`, `secret`, `apiKey`, ...) is shown as `MASK`. `mask_secrets` is the one masking function
(spec previews, the launch form, the lock file); `secret_literals` / `secret_warnings` name the
literal values a shared file must not carry. The `DCS_SECRET_<SCOPE>_<KEY>` variable naming of the
local workspace lives in dcs_magic.settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "is_secret_reference", "mask_password", "mask_secrets", "secret_literals",
           "secret_reference", "secret_warnings"]

MASK = "****"
"""What a literal password looks like in reprs, previews and `to_json()`."""

_SECRET_REFERENCE = re.compile(r"^\{\{\s*secrets/[^/{}\s]+/[^/{}\s]+\s*\}\}$")


def is_secret_reference(value: Any) -> bool:
    """True for a `{{secrets/scope/key}}` reference: a name the cluster resolves, not a secret."""
    return isinstance(value, str) and bool(_SECRET_REFERENCE.match(value))


def secret_reference(scope_key: str) -> str:
    """`SCOPE/KEY` (as `%dcs_push --secret-ref` takes it; a whole reference is accepted too) ->
    `{{secrets/SCOPE/KEY}}`. ValueError saying the expected shape for anything else, so a typo
    is refused where it is typed, not found when a cluster cannot resolve it."""
    text = (scope_key or "").strip()
    reference = text if text.startswith("{{") else f"{{{{secrets/{text}}}}}"
    if not is_secret_reference(reference):
        raise ValueError(f"{scope_key!r} is not SCOPE/KEY (a secret scope and a key, e.g. ci/registry-password)")
    return reference


def mask_password(value: Any) -> Any:
    """`****` for a literal; references and absent values are shown as they are."""
    return value if value in (None, "") or is_secret_reference(value) else MASK


def mask_secrets(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a create body safe to show or store: every value under a credential-like
    key (`is_secret_key`: `docker_image.basic_auth.password`, `spark_env_vars.OPENAI_API_KEY`,
    `spark_conf` `...secret.key`, `custom_tags`, ...) becomes `****`.

    `{{secrets/scope/key}}` references are kept: they name a secret, they are not one.
    This is the one masking function: previews, reprs and the lock file all use it; a masked
    body is for showing and storing only, never for sending.
    """
    masked: dict[str, Any] = _mask(body)  # a Mapping comes back as a dict
    return masked


# Substrings that make a key credential-like, and words (a key split at `_`, `.`, `-` and
# camelCase) that do: `OPENAI_API_KEY`, `DB_PASSWD`, `AWS_ACCESS_KEY_ID`, `fs.s3a.secret.key`,
# `privateKey`, `X_AUTH`; `monkey` or `passenger` do not.
_SECRET_SUBSTRINGS = ("password", "passwd", "token", "secret", "credential", "apikey", "accesskey",
                      "privatekey")
_SECRET_WORDS = frozenset({"key", "pass", "pwd", "private", "auth", "credentials"})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_key(key: str) -> bool:
    """True when KEY names a credential: its value is masked wherever it is shown or stored."""
    lowered = key.lower()
    if any(word in lowered for word in _SECRET_SUBSTRINGS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(key))


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if isinstance(value, str) and is_secret_key(key):
        return mask_password(value)
    return value


def secret_literals(body: Any, path: str = "") -> list[str]:
    """The dotted paths of literal (not `{{secrets/...}}`) values under credential-like keys."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for k, v in body.items():
            where = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and v and is_secret_key(str(k)) and not is_secret_reference(v):
                found.append(where)
            else:
                found += secret_literals(v, where)
    elif isinstance(body, list):
        for i, v in enumerate(body):
            found += secret_literals(v, f"{path}[{i}]")
    return found


def secret_warnings(body: Mapping[str, Any]) -> list[str]:
    """One warning per literal credential in BODY, naming the reference to use instead."""
    out = []
    for where in secret_literals(body):
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", where.rsplit(".", 1)[-1]).lower() or "key"
        out.append(f"{where} holds a literal credential: store it in a Databricks secret scope and "
                   f"write {{{{secrets/<scope>/{key}}}}} instead")
    return out
