"""The S3 client and what its failures mean: boto3 pointed at an endpoint, credentials from the
standard AWS chain (environment, shared config, instance role), never read, stored or printed
here.

Failures become the one error tree: an endpoint that does not answer, missing or refused
credentials are :class:`~zcbench.errors.EnvError` (exit 3); what a server says about an object
or a bucket is left to the caller, which knows what a refusal means there.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Final

from zcbench.errors import EnvError, UsageError

__all__ = ["AWS_ENDPOINT", "S3Endpoint", "error_code", "http_status", "s3_client", "s3_failure"]

AWS_ENDPOINT: Final = "aws"
"""The ``--s3`` value that means AWS's own endpoint for the configured region."""


class S3Endpoint:
    """Where the bucket lives: ``aws`` (AWS's endpoint) or an ``http(s)://host[:port]`` URL
    without credentials, path or query (a URL with a user name or password is refused, so no
    secret reaches a manifest or a message)."""

    def __init__(self, value: str) -> None:
        self.url: str | None
        if value == AWS_ENDPOINT:
            self.url = None
            return
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--s3 {value!r} is not an endpoint: give http(s)://host[:port] "
                             f"or '{AWS_ENDPOINT}'")
        if parts.username or parts.password:
            raise UsageError("--s3 must not carry credentials: they come from the standard AWS "
                             "environment or config")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"--s3 {parts.scheme}://{parts.netloc}: give the endpoint alone, "
                             "without a path or query")
        self.url = f"{parts.scheme}://{parts.netloc}"

    def __str__(self) -> str:
        return self.url or AWS_ENDPOINT


def s3_client(endpoint: S3Endpoint, *, connect_timeout: float = 5.0) -> Any:
    """A boto3 S3 client for ``endpoint`` (path-style addressing, one attempt per request so an
    unreachable endpoint fails fast); raises :class:`EnvError` without credentials."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=60,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise EnvError("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                           "or a profile (AWS_PROFILE) in the standard AWS config")
        region = session.region_name or "us-east-1"
        return session.client("s3", endpoint_url=endpoint.url, region_name=region,
                               config=config)
    except BotoCoreError as exc:
        raise EnvError(f"cannot make an S3 client for {endpoint}: {exc}") from None


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (``AccessDenied``), else ``""``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ``ClientError``, else 0."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status if isinstance(status, int) else 0
    return 0


_CREDENTIAL_CODES: Final = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "InvalidClientTokenId",
})


def s3_failure(exc: BaseException, endpoint: S3Endpoint, what: str) -> EnvError | None:
    """The :class:`EnvError` for a transport or credential failure while doing ``what``; None
    for any other server answer (the caller decides what that refusal means)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _CREDENTIAL_CODES:
            return EnvError(f"S3 at {endpoint} refused the credentials ({code}) while trying to "
                            f"{what}: check the AWS environment or profile")
        if http_status(exc) >= 500:
            return EnvError(f"S3 at {endpoint} failed ({code or http_status(exc)}) while trying "
                            f"to {what}; try again")
        return None
    if isinstance(exc, BotoCoreError):
        reason = type(exc).__name__
        if "Connect" in reason or "Endpoint" in reason or "Timeout" in reason:
            return EnvError(f"S3 at {endpoint} does not answer ({reason}) while trying to "
                            f"{what}: is the server running and the URL right?")
        if "Credential" in reason:
            return EnvError("no usable AWS credentials: set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY or a profile")
        return EnvError(f"S3 at {endpoint} failed ({reason}) while trying to {what}")
    return None
