"""The access log: one structured record per request, with ECS HTTP fields.

::

    GET /items/42 200   http.request.method=GET url.path=/items/42 http.response.status_code=200
                        event.duration=1234567 (ns) http.response.body.bytes=27 client.ip=...

The level follows the status (5xx error, 4xx warning, else info). Noisy routes can be skipped or
sampled; errors are always logged. It replaces uvicorn's own access line (no duplicates).

The middleware builds the record whole when the response ends, as the stdlib and structlog
front-ends build theirs (the head every record has, the context, then the fields), and hands it
to the pipeline, which redacts and routes it like any other. Going through ``log.info(**fields)``
instead packed the fields into keyword arguments and merged them into a second dict: about 4 us
more per request, in-process.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["AccessLog", "client_ip"]

#: The guide samples health checks and metrics scrapes at 10%.
DEFAULT_SAMPLE = {"/health": 0.1, "/metrics": 0.1, "/status": 0.1}


class AccessLog:
    """Options for the access log.

    Args:
        enabled: write one record per request.
        skip: paths never logged (unless the response is a 4xx/5xx).
        sample: path -> fraction of successful requests logged (default: the guide's 10% for
            ``/health``, ``/metrics`` and ``/status``).
        trusted_proxies: how many reverse proxies in front of the app to trust; ``client.ip`` is
            then read from ``X-Forwarded-For`` that many hops from the right. 0 (default) uses the
            socket peer and ignores the header, which any client can forge.
        logger: the logger name of the records.

    Raises:
        ConfigError: for a bad option: ``skip`` as one string, a ``sample`` rate that is not a
            number from 0 to 1, ``trusted_proxies`` that is not an integer >= 0, and so on.
    """

    __slots__ = ("enabled", "logger", "sample", "skip", "trusted_proxies")

    def __init__(
        self,
        *,
        enabled: bool = True,
        skip: Iterable[str] = (),
        sample: Mapping[str, float] | None = None,
        trusted_proxies: int = 0,
        logger: str = "servicelog.access",
    ) -> None:
        from ..exceptions import ConfigError

        # Checked once here, never per request.
        if not isinstance(enabled, bool):
            raise ConfigError("enabled", enabled, "True or False")
        if isinstance(skip, str) or not isinstance(skip, Iterable):
            # A str is an iterable of its characters: skip="/health" would skip nothing.
            raise ConfigError("skip", skip, "an iterable of paths, such as {'/health'}")
        paths = frozenset(skip)
        if not all(isinstance(path, str) for path in paths):
            raise ConfigError("skip", skip, "an iterable of paths (str), such as {'/health'}")
        if sample is not None and not isinstance(sample, Mapping):
            raise ConfigError("sample", sample, "a mapping of path to fraction, or None")
        rates: dict[str, float] = {}
        rate: Any
        for path, rate in (DEFAULT_SAMPLE if sample is None else sample).items():
            if not isinstance(path, str):
                raise ConfigError("sample", path, "paths (str) as keys")
            # A number (int, float, Decimal, Fraction), stored as a float: bool is an int
            # subclass, and a str would compare as text at each request.
            try:
                if isinstance(rate, bool) or not isinstance(rate, numbers.Number):
                    raise TypeError
                fraction = float(rate)  # type: ignore[arg-type]  # complex: TypeError
            except (TypeError, ValueError, OverflowError):
                fraction = math.nan
            if not 0.0 <= fraction <= 1.0:  # NaN fails both comparisons
                raise ConfigError(f"sample[{path!r}]", rate, "a fraction between 0.0 and 1.0")
            rates[path] = fraction
        if isinstance(trusted_proxies, bool) or not isinstance(trusted_proxies, int):
            raise ConfigError("trusted_proxies", trusted_proxies, "an integer >= 0")
        if trusted_proxies < 0:
            raise ConfigError("trusted_proxies", trusted_proxies, "an integer >= 0")
        if not isinstance(logger, str) or not logger:
            raise ConfigError("logger", logger, "a non-empty logger name")
        self.enabled = enabled
        self.skip = paths
        self.sample = rates
        self.trusted_proxies = trusted_proxies
        self.logger = logger

    def wanted(self, path: str, status: int, rand: Callable[[], float] = random.random) -> bool:
        """Whether this request gets an access record (errors always do)."""
        if status >= 400:
            return True
        if path in self.skip:
            return False
        rate = self.sample.get(path)
        return rate is None or rand() < rate


def client_ip(scope: Mapping[str, Any], trusted_proxies: int) -> str | None:
    """The client's address: the socket peer, or with trusted proxies the right hop of
    ``X-Forwarded-For``. A value that is not an IP address is ignored."""
    peer = scope.get("client")
    ip = peer[0] if peer else None
    if trusted_proxies:
        # Every X-Forwarded-For line, in order, as one list (RFC 9110 5.3): a proxy that adds
        # its own line after the client's must not leave the client's forged one in charge.
        lines = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
        if lines:
            forwarded = b",".join(lines)
            hops = [h.strip() for h in forwarded.decode("latin-1").split(",")]
            if len(hops) >= trusted_proxies:
                candidate = hops[-trusted_proxies]
                try:
                    ip = str(ipaddress.ip_address(candidate))
                except ValueError:
                    pass
    return ip
