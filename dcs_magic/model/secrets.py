"""Secrets in cluster bodies, with no I/O: what a reference is, which keys hold secrets, masking.

A `{{secrets/<scope>/<key>}}` reference is a name the cluster resolves, so it is kept as it is
wherever a body is shown or written; a literal value under a secret-looking key (`password`,
`token`, `secret`, `apiKey`, `GH_PAT`, ...) is shown as `MASK`. A value is masked under any key
when it looks like a credential itself (`secret_spans`: the value rule, below), e.g.
`DATABASE_URL=postgres://u:pw@db/x` becomes `postgres://u:****@db/x`.

The value rule (`secret_spans`), tuned so normal specs are untouched:

- a URL with a password in its userinfo (`scheme://user:password@host`): the password;
- a well-known token prefix followed by its token body: GitHub `ghp_` `gho_` `ghu_` `ghs_`
  `ghr_` `github_pat_`, Databricks `dapi` + hex, Slack `xox[abposr]-`, AWS `AKIA`/`ASIA` + 16,
  Google `AIza` + 35, OpenAI-style `sk-` + 20 or more, GitLab `glpat-`, npm `npm_`;
- a long random word: 24 or more characters of `[A-Za-z0-9+/=_-]` with upper- and lower-case
  letters and at least 3 digits, Shannon entropy of 4 bits a character or more, that is not
  base64 of text. Not flagged: hex hashes and image digests (`sha256:` + hex has no upper
  case), UUIDs, paths (a word starting with `/` or holding two or more), dotted names, words
  with fewer than 3 digits (`MyVeryLongClassName2`), base64 that decodes to text. `mask_secrets` is the one masking function
(spec previews, the launch form, the lock file); `secret_literals` / `secret_warnings` name the
literal values a shared file must not carry. The `DCS_SECRET_<SCOPE>_<KEY>` variable naming of the
local workspace lives in dcs_magic.settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "is_secret_reference", "mask_password", "mask_secret_values", "mask_secrets",
           "secret_kind", "secret_literals", "secret_reference", "secret_spans", "secret_warnings"]

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


_URL_PASSWORD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:(?P<secret>[^/\s@]+)@")
_TOKENS = (
    ("a GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("a Databricks token", r"\bdapi[0-9a-f]{20,}(?:-\d+)?"),
    ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("an API key (sk-)", r"\bsk-[A-Za-z0-9_-]{20,}"),
    ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("an npm token", r"\bnpm_[A-Za-z0-9]{36}"),
)
_TOKEN = [(kind, re.compile(pattern)) for kind, pattern in _TOKENS]
_WORD_CHARS = re.compile(r"[A-Za-z0-9+/=_-]{24,}")
_MIN_ENTROPY = 4.0
_RANDOM = "a long random string"


def secret_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each credential-looking part of TEXT, by the value rule in the
    module docstring; `kind` says what it looks like ("a URL with a password", "a GitHub
    token", ...), never the value. `{{secrets/...}}` references are never flagged."""
    if not isinstance(text, str) or not text or is_secret_reference(text):
        return []
    spans: list[tuple[int, int, str]] = []
    for match in _URL_PASSWORD.finditer(text):
        if not is_secret_reference(match.group("secret")) and "{{" not in match.group("secret"):
            spans.append((match.start("secret"), match.end("secret"), "a URL with a password"))
    for kind, pattern in _TOKEN:
        spans += [(m.start(), m.end(), kind) for m in pattern.finditer(text)]
    for match in _WORD_CHARS.finditer(text):
        if _random_word(match.group()):
            spans.append((match.start(), match.end(), _RANDOM))
    return _merged(spans)


def secret_kind(text: Any) -> str | None:
    """What TEXT holds that looks like a credential (see `secret_spans`), None when nothing."""
    spans = secret_spans(text) if isinstance(text, str) else []
    return spans[0][2] if spans else None


def mask_secret_values(text: str) -> str:
    """TEXT with every credential-looking part (`secret_spans`) replaced by `****`."""
    spans = secret_spans(text)
    for start, end, _kind in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


def _merged(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    # Where spans overlap, the first named kind wins over "a long random string".
    for start, end, kind in sorted(spans, key=lambda span: (span[0], span[2] == _RANDOM, -span[1])):
        if out and start < out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[1], end), last[2])
        else:
            out.append((start, end, kind))
    return out


def _random_word(word: str) -> bool:
    import base64
    import math

    if word.startswith("/") or word.count("/") >= 2:
        return False  # a path
    digits = sum(c.isdigit() for c in word)
    if digits < 3 or not any(c.isupper() for c in word) or not any(c.islower() for c in word):
        return False  # hex hashes, digests, UUIDs, words and names
    counts = {c: word.count(c) for c in set(word)}
    entropy = -sum(n / len(word) * math.log2(n / len(word)) for n in counts.values())
    if entropy < _MIN_ENTROPY:
        return False
    body = word.rstrip("=")
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            decoded = decode(body + "=" * (-len(body) % 4)).decode("utf-8")
        except ValueError:
            continue
        if decoded and sum(c.isprintable() or c in "\n\t" for c in decoded) >= 0.95 * len(decoded):
            return False  # base64 of text
    return True


def mask_password(value: Any) -> Any:
    """`****` for a literal; references and absent values are shown as they are."""
    return value if value in (None, "") or is_secret_reference(value) else MASK


def mask_secrets(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a create body safe to show or store: every value under a credential-like
    key (`is_secret_key`: `docker_image.basic_auth.password`, `spark_env_vars.OPENAI_API_KEY`,
    `spark_conf` `...secret.key`, `custom_tags`, ...) becomes `****`, and under any other key
    each credential-looking part of a value (`secret_spans`: a URL's password, a `ghp_...`
    token, a long random string) becomes `****`.

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
_SECRET_WORDS = frozenset({"key", "pass", "pwd", "pat", "private", "auth", "credentials"})
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
    if isinstance(value, str):
        return mask_secret_values(value)
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
