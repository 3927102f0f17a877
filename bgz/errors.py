"""The errors an operator meets, as one plain sentence and a hint instead of a traceback."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
    TokenRetrievalError,
)


class OperatorError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def explain(exc: BaseException) -> OperatorError | None:
    """An OperatorError for the AWS errors people actually hit, or None for a real bug."""
    if isinstance(exc, OperatorError):
        return exc
    if isinstance(exc, NoCredentialsError | TokenRetrievalError):
        return OperatorError(
            "no AWS credentials found",
            "run `aws configure` or `aws sso login --profile NAME`, then pass --profile NAME or set AWS_PROFILE",
        )
    if isinstance(exc, ProfileNotFound):
        return OperatorError(str(exc), "list your profiles with `aws configure list-profiles`")
    if isinstance(exc, NoRegionError):
        return OperatorError("no AWS region set", "pass --region, or set region in samconfig.toml or your AWS profile")
    if isinstance(exc, EndpointConnectionError):
        return OperatorError(f"cannot reach AWS: {exc}", "check your network and that --region is a real region")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException"):
            return OperatorError(f"AWS refused your credentials ({code})", "refresh them: `aws sso login` or new keys")
        if code in ("AccessDenied", "AccessDeniedException"):
            return OperatorError(f"access denied: {message}", "use a profile that may run this stack")
        return OperatorError(f"AWS error {code}: {message}")
    return None
