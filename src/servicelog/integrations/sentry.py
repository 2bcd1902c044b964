"""Sentry: the exceptions servicelog answers still reach a Sentry client the app initialised.

Starlette's stack re-raises an unhandled exception to the server, and sentry-sdk's ASGI
integration, wrapped around the application, reports it on its way out. The request-context
middleware answers it instead (a 500 with the request ID, logged once) and does not re-raise,
so it hands the exception to Sentry itself. servicelog never imports sentry-sdk: nothing
happens unless the application imported and initialised it.
"""

from __future__ import annotations

import sys

from .. import _errors

__all__ = ["capture_unhandled"]


def capture_unhandled(exc: BaseException, request_id: str | None = None) -> None:
    """Report *exc* to the active Sentry client, if the app has one, tagged with the request
    ID that its log lines carry (never raises)."""
    sentry = sys.modules.get("sentry_sdk")
    if sentry is None:
        return
    try:
        if sentry.get_client().is_active():
            # The request's own scope (sentry's ASGI integration opened it outside us) adds
            # the request data; its dedupe drops this event if the exception reaches it too.
            tags = {"request_id": request_id} if request_id else None
            sentry.capture_exception(exc, tags=tags)
    except Exception as failure:  # an old or broken sentry-sdk
        _errors.report("sentry", failure)
