"""ASGI: request context, request IDs, trace context, the access log and error responses.

Pure ASGI only (never ``BaseHTTPMiddleware``, which breaks context propagation and costs a task
group per request). Works with FastAPI, Starlette or any ASGI application.
"""

from __future__ import annotations

from .access_log import AccessLog
from .request_context import RequestContextMiddleware

__all__ = ["AccessLog", "RequestContextMiddleware"]
