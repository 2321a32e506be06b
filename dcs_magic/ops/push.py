"""`push()`: a local image -> its registry -> a PushResult with the pushed digest.

The function behind `%dcs_push` and `dcs build --push`. Progress, stopping and `--bg` work
as for `build()` (ops/runner.py); this module holds what is the push's own: the reference
check, credentials handed to the engine for one request, and the registry's wording turned
into a PushError that says what happened and how to fix it (never a credential).

Before a push reports success it asks the registry which digest the pushed tag serves (HEAD of
the manifest, with the push's own `--username` credentials, else this machine's `docker login`,
credential helpers included: `verify_pushed_digest`, shared with `dcs build --push`). Another
digest is a PushError (`reason` DIGEST_MISMATCH): a tag moved meanwhile, or a proxy or mirror in
front of the registry serves something else. A registry that cannot be asked (no answer, a
refusal, a credential helper that fails) leaves a warning, not a failure.
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Any

from ..errors import EngineError, PushError, RegistryError
from ..model.credentials import Secret
from ..model.imageref import ImageRef, parse_reference
from ..model.progress import PushState
from ..model.results import PushResult
from .runner import (
    Cancelled,
    CancelToken,
    ProgressSink,
    Reporter,
    aborting,
    consume,
    offer_cancel,
    reported,
    run_stoppable,
    token_for,
)

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.engine import Engine

__all__ = ["DIGEST_MISMATCH", "push", "verify_pushed_digest"]

DIGEST_MISMATCH = "digest mismatch"
"""`PushError.reason` when the registry serves another digest than the push reported."""


def push(reference: str, *, username: str | None = None, password: Secret | str | None = None,
         secret_ref: str | None = None, progress: ProgressSink | None = None, interval: float = 0.1,
         cancel: CancelToken | None = None, verify: bool = True) -> PushResult:
    """Push the local image `reference` (repo[:tag]) to its registry; return a PushResult.

    Credentials: Docker's own config and credential helpers, unless `username` is given with
    `password` (a `credentials.Secret` or a str); the password is passed to the engine for
    this one request and dropped. `secret_ref` (`{{secrets/scope/key}}`) names where the
    workspace keeps that password: it is only recorded in the result (with `username`), so
    the launch form can start from the same registry auth.
    Failures raise PushError with the registry's reason (never a credential). With `verify`
    (the default) the registry is asked for the pushed tag's digest before success is reported
    (`verify_pushed_digest`): another digest is a PushError, no answer a warning in the view.
    Stopping works as for `build()` (closing the stream makes the engine abort the upload) and
    raises `Cancelled("Push cancelled")`.
    """
    token = token_for(cancel)
    state = PushState(reference=reference)
    reporter = Reporter(state, progress, interval, token)
    offer_cancel(progress, token.cancel)
    # A one-item list: _push pops the credentials out, so no frame keeps them past the send.
    # The password is a Secret from here to the engine call (a str is wrapped at once).
    secret = Secret(password) if isinstance(password, str) else password
    holder = [{"username": username, "password": secret} if (username or password) else None]
    # The check after the push asks with the same credentials (a Secret, masked in tracebacks).
    check = (username, secret) if verify else None
    del password, secret
    result = run_stoppable(token, lambda: reported(reporter, _push, reporter, state, reference, holder, token,
                                                   check))
    result.username, result.secret_ref = username, secret_ref
    return result


def _push(reporter: Reporter, state: PushState, reference: str, auth_holder: list[dict[str, Any] | None],
          token: CancelToken, check: tuple[str | None, Secret | None] | None = None) -> PushResult:
    from ..adapters import engine as engine_mod

    ref = _push_ref(reference)
    tag = ref.tag or "latest"
    pushed = state.reference = f"{ref.repository}:{tag}"
    auth = auth_holder.pop()
    given = auth is not None  # --username/--password-env given: a refusal is about those
    if auth is not None:
        if not auth["username"] or not auth["password"]:
            raise PushError("A registry username needs a password and a password needs a username",
                            reference=pushed, hint="Pass --username U with --password-env VAR "
                            "(or answer the password prompt).")
        auth["serveraddress"] = ref.registry
    with closing(engine_mod.connect()) as engine, aborting(token, engine):
        reporter.call(state.use_engine, engine.label)  # the views say which engine pushes
        if token.is_set():
            raise Cancelled("Push cancelled")
        # No inspect first (the Docker CLI does none either): the engine refuses a missing
        # image in the stream, and only then do we ask whether the image is here.
        # The password stays a Secret (masked in tracebacks): the engine adapter reveals it
        # inside its call to docker-py only.
        events = engine.push_events(ref.repository, tag, auth_config=auth)
        del auth  # the generator holds it until the request is sent, then drops it
        try:
            consume(reporter, events, token=token)
        except engine_mod.StreamError as exc:
            reporter.apply(exc.event)
            if _missing(engine, pushed):
                raise _no_local_image(pushed) from exc
            raise _push_error(pushed, ref.registry, exc.message, credentials_given=given) from exc
        except KeyboardInterrupt as exc:
            token.cancel()  # Ctrl-C in this thread: make sure the stream is shut too
            raise Cancelled("Push cancelled") from exc
        if not state.digest:
            reporter.call(state.finish)
            raise PushError(f"The push of {pushed} ended without a digest from the registry",
                            reference=pushed, reason="no digest")
        if check is not None:  # before success is reported: the registry must serve this digest
            problem = verify_pushed_digest(pushed, state.digest, *check)
            if problem:
                reporter.call(state.warn, problem)
        reporter.call(state.finish)
    image = ImageRef(ref.domain, ref.path, tag, state.digest)
    return PushResult(reference=pushed, digest=state.digest, pinned=image.pinned(), image=image,
                      size=state.size, duration_s=round(reporter.elapsed_s, 3))


def verify_pushed_digest(reference: str, digest: str, username: str | None = None,
                         password: Secret | None = None) -> str | None:
    """Ask the registry which digest REFERENCE's tag serves (HEAD of its manifest, with
    USERNAME/PASSWORD, else this machine's `docker login`) and compare it with
    DIGEST, the one the push reported. None when they agree; PushError (reason
    DIGEST_MISMATCH) when the registry serves another or none; the text of a warning when
    the registry could not be asked (the push itself succeeded)."""
    import requests

    from ..adapters.registry import manifest_digest, network_reason

    try:
        served = manifest_digest(reference, username, password)
    except RegistryError as exc:  # the credential helper Docker's config names could not answer
        return (f"could not check {reference} against the registry's manifest ({exc.message}; {exc.hint}); "
                f"the digest is the one the push reported, {digest}")
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        return (f"could not check {reference} against the registry's manifest (HEAD answered {status}); "
                f"the digest is the one the push reported, {digest}")
    except (requests.RequestException, ValueError) as exc:
        return (f"could not check {reference} against the registry's manifest ({network_reason(exc)}); "
                f"the digest is the one the push reported, {digest}")
    if served != digest:
        raise PushError(f"the registry serves {served or 'no digest'} for {reference}, but the push reported "
                        f"{digest}", reference=reference, reason=DIGEST_MISMATCH,
                        hint="the tag moved meanwhile (another push?), or a proxy or mirror in front of the "
                             "registry serves another manifest; push again with a unique tag and launch by digest")
    return None


def _missing(engine: Engine, reference: str) -> bool:
    """After a failed push: is the image not in the engine at all? The engine says so in its
    own words ("An image does not exist locally with the tag", "tag does not exist"), but
    for a missing tag only after reaching the registry, so a registry that is also down or
    refusing would hide the real cause. An engine gone meanwhile: keep the push's error."""
    try:
        return not engine.image_exists(reference)
    except EngineError:
        return False


def _no_local_image(reference: str) -> PushError:
    return PushError(f"No local image {reference} to push", reference=reference, reason="image not found",
                     hint=f"Build it first: %dcs_build -t {reference}")


def _push_ref(reference: str) -> ImageRef:
    try:
        ref = parse_reference(reference)
    except ValueError as exc:
        raise PushError(f"Cannot push {reference!r}: {exc}", reference=reference,
                        hint="Write it as [registry[:port]/]name[:tag]") from exc
    if ref.digest:
        raise PushError(f"Cannot push {reference!r}: push a tag, not a digest", reference=reference,
                        hint="Drop the @sha256:... part; the digest is what the push returns.")
    return ref


# Registry / engine wording -> (what it means, how to fix). First match wins.
_PUSH_REASONS: list[tuple[tuple[str, ...], str, str]] = [
    (("429", "toomanyrequests", "too many requests"), "rate limited by the registry at {registry} (429 Too Many Requests)",
     "Wait a while and push again; authenticated pushes usually get higher limits."),
    (("connection refused", "no such host", "i/o timeout", "dial tcp", "no route to host", "network is unreachable"),
     "registry unreachable at {registry}", "Check the registry address and that the registry is running."),
    (("unauthorized", "authentication required", "no basic auth credentials", "incorrect username or password",
      "authentication failed"), "the registry at {registry} did not accept the credentials",
     "Log in with `docker login {registry}`, or pass --username U --password-env VAR."),
    (("denied", "forbidden"), "access denied by the registry at {registry}",
     "Check that the account may push to this repository."),
    (("does not exist locally", "no such image"), "no local image to push", "Build it first with %dcs_build -t REF."),
    (("unexpected http status: 5", "internal server error", "bad gateway", "service unavailable",
      "gateway timeout"), "the registry at {registry} failed on its side (HTTP 5xx)",
     "Push again in a while (layers already pushed are kept); if it persists, check the registry's status."),
]


_GIVEN_REFUSED_HINT = ("Check the --username and the password the --password-env variable (or the prompt) "
                      "gave for {registry}; a registry token may have expired.")


def _push_error(reference: str, registry: str, message: str, *, credentials_given: bool = False) -> PushError:
    lowered = message.lower()
    for needles, what, hint in _PUSH_REASONS:
        if any(needle in lowered for needle in needles):
            if credentials_given and "did not accept the credentials" in what:
                hint = _GIVEN_REFUSED_HINT  # not `docker login`: those credentials were not used
            return PushError(f"Push of {reference} failed: {what.format(registry=registry)}: {message}",
                             reference=reference, reason=message, hint=hint.format(registry=registry))
    return PushError(f"Push of {reference} failed: {message}", reference=reference, reason=message)
