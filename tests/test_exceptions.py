"""servicelog's exceptions cross process boundaries intact (Celery, multiprocessing)."""

from __future__ import annotations

import copy
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

import servicelog
from servicelog import errors


class PaymentDeclined(errors.BusinessRuleException):
    code = "payment_declined"


EXAMPLES = [
    errors.BaseAPIException("boom", {"a": 1}, status_code=503, code="x", headers={"X-A": "1"}),
    errors.NotFoundException("Order", 42),
    errors.RateLimitException(30),
    errors.BusinessRuleException("max_items", "too many"),
    errors.InsufficientBalanceException(10, 5),
    errors.InvalidStateException("paid", "cart"),
    errors.ExternalServiceException("payments", "timeout"),
    PaymentDeclined("card_check", "declined"),
]


def _state(exc: errors.BaseAPIException) -> tuple[object, ...]:
    return (type(exc), str(exc), exc.args, exc.status_code, exc.code, exc.details, exc.headers)


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
def test_api_exceptions_survive_pickle_and_copy(exc: errors.BaseAPIException) -> None:
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert _state(clone) == _state(exc)


def test_config_error_survives_pickle() -> None:
    exc = servicelog.ConfigError("level", "LOUD", "a level", source="SERVICELOG_LEVEL")
    clone = pickle.loads(pickle.dumps(exc))
    assert (str(clone), clone.option, clone.value, clone.source) == (
        str(exc),
        "level",
        "LOUD",
        "SERVICELOG_LEVEL",
    )


def _raise_rate_limit() -> None:
    raise errors.RateLimitException(30)


def test_an_api_exception_raised_in_a_worker_process_reaches_the_parent() -> None:
    """Unpicklable, it broke the pool (``BrokenProcessPool``; ``multiprocessing.Pool`` hung)."""
    with (
        ProcessPoolExecutor(max_workers=1) as pool,
        pytest.raises(errors.RateLimitException) as caught,
    ):
        pool.submit(_raise_rate_limit).result(timeout=60)
    assert (caught.value.status_code, caught.value.headers) == (429, {"Retry-After": "30"})


@pytest.mark.parametrize(
    ("given", "header"),
    [(30, "30"), (2.5, "3"), (-5, "0"), (float("inf"), "0"), ("soon", "0"), (None, "0")],
)
def test_retry_after_is_always_a_valid_header(given: object, header: str) -> None:
    exc = errors.RateLimitException(given)  # type: ignore[arg-type]
    assert exc.headers == {"Retry-After": header}


@pytest.mark.parametrize(
    ("given", "header"),
    [(30, "30"), ("30", "30"), (2.5, "3"), (-5, "0"), (float("nan"), None), ("soon", None)],
)
def test_service_unavailable_sends_a_valid_retry_after_or_none(
    given: object, header: str | None
) -> None:
    """As the rate limit's: whole seconds, at least 0; a value that is no number sends none
    (the 503 must not become a 500 over its own header)."""
    exc = errors.ServiceUnavailableException(retry_after=given)  # type: ignore[arg-type]
    assert (exc.headers or {}).get("Retry-After") == header
    assert exc.details.get("retry_after") == (None if header is None else int(header))


def test_a_subclass_default_message_is_its_default_everywhere() -> None:
    """``default_message`` in a one-line subclass, also of the classes whose message is made
    from their arguments; without it, the made message."""

    class OrderMissing(errors.NotFoundException):
        default_message = "No such order"

    class PaymentsDown(errors.ExternalServiceException):
        default_message = "Payments are down"

    assert OrderMissing("Order", 42).message == "No such order"
    assert OrderMissing("Order", 42, message="gone").message == "gone"
    assert PaymentsDown("payments").message == "Payments are down"
    assert PaymentsDown("payments", "timeout").message == "payments service error: timeout"
    assert errors.NotFoundException("Order").message == "Order not found"
    assert errors.ExternalServiceException("payments").message == "payments service error"


def test_header_values_are_text() -> None:
    exc = errors.BaseAPIException(headers={"Retry-After": 5})  # type: ignore[dict-item]
    assert exc.headers == {"Retry-After": "5"}
