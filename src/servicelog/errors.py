"""The exception hierarchy your API raises; servicelog turns each into the same JSON error.

Raise these anywhere in a request; the handlers installed by ``servicelog.fastapi.install``
answer with the status, a stable machine-readable ``code``, the message and the details, and log
4xx as warnings and 5xx as errors::

    BaseAPIException                      500  internal_error
     ├── ValidationException              400  validation_error
     ├── AuthenticationException          401  authentication_failed
     ├── AuthorizationException           403  forbidden
     ├── NotFoundException                404  not_found          (resource, identifier)
     ├── ConflictException                409  conflict
     ├── RateLimitException               429  rate_limited       (Retry-After header)
     ├── BusinessRuleException            422  business_rule_violation  (rule)
     │    ├── InsufficientBalanceException     insufficient_balance     (required, available)
     │    └── InvalidStateException            invalid_state            (current, target)
     ├── DatabaseException                500  database_error
     ├── ExternalServiceException         502  external_service_error   (service)
     └── ServiceUnavailableException      503  service_unavailable      (optional Retry-After)

Subclass in one line; the class attributes are the defaults::

    class PaymentDeclined(BusinessRuleException):
        code = "payment_declined"

The message of a 5xx is *not* shown to clients in production (it may hold internals); they get
the status's phrase ("Internal Server Error", "Bad Gateway", ...) and the request ID, while the
log keeps everything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AuthenticationException",
    "AuthorizationException",
    "BaseAPIException",
    "BusinessRuleException",
    "ConflictException",
    "DatabaseException",
    "ExternalServiceException",
    "InsufficientBalanceException",
    "InvalidStateException",
    "NotFoundException",
    "RateLimitException",
    "ServiceUnavailableException",
    "ValidationException",
]


class BaseAPIException(Exception):
    """Base of every API error: an HTTP status, a stable code, a message and details.

    Args:
        message: for the client (and the log). Defaults to the class's ``default_message``.
        details: JSON-compatible details for the client (never put secrets here).
        status_code: override the class's status.
        code: override the class's machine-readable code.
        headers: extra response headers.
    """

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message if message is not None else self.default_message
        self.details: dict[str, Any] = dict(details or {})
        if status_code is not None:
            self.status_code = status_code  # type: ignore[misc]
        if code is not None:
            self.code = code  # type: ignore[misc]
        # Header values as text (a Retry-After of 5 is common): the response is built by a
        # handler that must not fail on them.
        self.headers: dict[str, str] = {str(k): str(v) for k, v in (headers or {}).items()}
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as it is, without calling the subclass's __init__ again: the default rebuilds
        # with cls(*args), which most subclasses' signatures refuse (a multiprocessing pool
        # whose worker raised one then hung) or misread (a message taken for a resource).
        return (_restore, (type(self), self.args), self.__dict__)


def _restore(cls: type[BaseAPIException], args: tuple[Any, ...]) -> BaseAPIException:
    """A :class:`BaseAPIException` rebuilt from a pickle (its state is set afterwards)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    return exc


# --- client errors (4xx) ------------------------------------------------------------------------
class ValidationException(BaseAPIException):
    """The request is well-formed but its values are not acceptable (400)."""

    status_code = 400
    code = "validation_error"
    default_message = "Validation failed"


class AuthenticationException(BaseAPIException):
    """No valid credentials (401)."""

    status_code = 401
    code = "authentication_failed"
    default_message = "Authentication failed"


class AuthorizationException(BaseAPIException):
    """Authenticated, but not allowed (403)."""

    status_code = 403
    code = "forbidden"
    default_message = "Access denied"


class NotFoundException(BaseAPIException):
    """A resource does not exist (404): ``NotFoundException("Order", 42)``."""

    status_code = 404
    code = "not_found"
    default_message = "Not found"

    def __init__(
        self,
        resource: str = "Resource",
        identifier: Any = None,
        *,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.resource = resource
        self.identifier = identifier
        merged = {"resource": resource, **(details or {})}
        if identifier is not None:
            merged["identifier"] = str(identifier)
        if message is None and self.default_message == NotFoundException.default_message:
            message = f"{resource} not found"  # (a subclass's own default_message wins)
        super().__init__(message, merged)


class ConflictException(BaseAPIException):
    """The request conflicts with the current state, e.g. a duplicate (409)."""

    status_code = 409
    code = "conflict"
    default_message = "Conflict"


class RateLimitException(BaseAPIException):
    """Too many requests (429), with a ``Retry-After`` header in seconds."""

    status_code = 429
    code = "rate_limited"
    default_message = "Rate limit exceeded"

    def __init__(self, retry_after: int = 60, message: str | None = None) -> None:
        # Whole seconds, at least 0 (RFC 9110 10.2.3): 2.5 is 3, a negative or unusable value 0
        # (the request that is being answered must not fail over its own header).
        self.retry_after = _seconds(retry_after) or 0
        super().__init__(
            message,
            {"retry_after": self.retry_after},
            headers={"Retry-After": str(self.retry_after)},
        )


class BusinessRuleException(BaseAPIException):
    """A business rule forbids the operation (422): ``BusinessRuleException("max_items")``."""

    status_code = 422
    code = "business_rule_violation"
    default_message = "Business rule violated"

    def __init__(
        self,
        rule: str = "unspecified",
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.rule = rule
        super().__init__(message, {"rule": rule, **(details or {})})


class InsufficientBalanceException(BusinessRuleException):
    """The balance does not cover the amount (422)."""

    code = "insufficient_balance"

    def __init__(self, required: float, available: float) -> None:
        self.required = required
        self.available = available
        super().__init__(
            "balance_check",
            f"Insufficient balance. Required: {required}, Available: {available}",
            {"required": required, "available": available},
        )


class InvalidStateException(BusinessRuleException):
    """A state transition that is not allowed (422)."""

    code = "invalid_state"

    def __init__(self, current_state: str, target_state: str) -> None:
        self.current_state = current_state
        self.target_state = target_state
        super().__init__(
            "state_transition",
            f"Cannot transition from {current_state} to {target_state}",
            {"current_state": current_state, "target_state": target_state},
        )


# --- server errors (5xx) ------------------------------------------------------------------------
class DatabaseException(BaseAPIException):
    """The database failed (500)."""

    status_code = 500
    code = "database_error"
    default_message = "Database error"


class ExternalServiceException(BaseAPIException):
    """A service we depend on failed (502): ``ExternalServiceException("payments", "timeout")``."""

    status_code = 502
    code = "external_service_error"
    default_message = "External service error"

    def __init__(
        self,
        service: str = "upstream",
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.service = service
        if message:
            text: str | None = f"{service} service error: {message}"
        elif self.default_message == ExternalServiceException.default_message:
            text = f"{service} service error"
        else:  # a subclass's own default_message
            text = None
        super().__init__(text, {"service": service, **(details or {})})


class ServiceUnavailableException(BaseAPIException):
    """We cannot serve right now (503), optionally with ``Retry-After``."""

    status_code = 503
    code = "service_unavailable"
    default_message = "Service temporarily unavailable"

    def __init__(self, message: str | None = None, retry_after: int | None = None) -> None:
        # As RateLimitException's: whole seconds, at least 0; an unusable value sends none.
        seconds = None if retry_after is None else _seconds(retry_after)
        self.retry_after = seconds
        headers = {"Retry-After": str(seconds)} if seconds is not None else None
        details = {"retry_after": seconds} if seconds is not None else None
        super().__init__(message, details, headers=headers)


def _seconds(value: Any) -> int | None:
    """*value* as whole seconds for ``Retry-After`` (RFC 9110 10.2.3): rounded up, at least 0
    (2.5 is 3, "30" is 30); ``None`` for a value that is no number (NaN, infinity, a word):
    the request being answered must not fail over its own header."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return max(0, math.ceil(float(value)))
    except (TypeError, ValueError, OverflowError):
        return None
