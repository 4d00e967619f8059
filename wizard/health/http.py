"""Asking the site over HTTP, as a visitor would: redirects followed on the site, its own name in the Host header.

Only the standard library: one GET at a time, no cookies kept, the body read up
to ``BODY_LIMIT``.  ``connect_to`` (``HOST:PORT``) sends the request to another
address (the app server behind the proxy) while the Host header and the TLS
name stay the site's, as ``curl --connect-to`` does.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit

from wizard import __version__

BODY_LIMIT = 512 * 1024
MAX_REDIRECTS = 8
REDIRECTS = {301, 302, 303, 307, 308}
NOT_YET = {502, 503, 504}  # what a proxy says while the app server starts
USER_AGENT = f"upgrade-wizard/{__version__} (health check)"


@dataclass(frozen=True)
class Answer:
    """What the site said to one GET, after the redirects it was allowed to follow."""

    url: str  # the address asked first
    final_url: str  # the last address asked
    status: int | None = None  # None: no HTTP answer at all (see error)
    reason: str = ""
    body: str = ""
    error: str | None = None  # refused, timed out, a TLS failure...
    redirects: tuple[str, ...] = ()  # "302 -> /login/" for each one followed
    elsewhere: str | None = None  # a redirect to another address, not followed
    seconds: float = 0.0

    @property
    def answered_ok(self) -> bool:
        """A status below 400 from the site itself (a redirect to elsewhere is not the site's own answer)."""
        return self.status is not None and self.status < 400 and self.elsewhere is None

    @property
    def starting(self) -> bool:
        """What a site says while its app server is (re)starting: refused, reset, or a proxy's 502-504."""
        return self.status in NOT_YET or any(word in (self.error or "") for word in ("refused", "reset"))

    def evidence(self) -> str:
        """One line for the operator: the address, the status (or the error) and the redirects."""
        via = "".join(f", {hop}" for hop in self.redirects)
        if self.error is not None:
            return f"GET {self.final_url}{via}: {self.error} (after {self.seconds:.1f} s)"
        away = f", then a redirect to {self.elsewhere} (not followed)" if self.elsewhere else ""
        return f"GET {self.url}{via}: {self.status} {self.reason}{away} in {self.seconds:.1f} s".replace("  ", " ")


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) as (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class _Plain(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, timeout: float, address: tuple[str, int] | None):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self._address or (self.host, self.port), self.timeout)


class _TLS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, timeout: float, address: tuple[str, int] | None):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection(self._address or (self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _connection(url: str, timeout: float, connect_to: str | None) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    address = split_address(connect_to) if connect_to else None
    kind = _TLS if parts.scheme == "https" else _Plain
    return kind(parts.hostname or "", parts.port, timeout, address)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset before an answer"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer in time (timed out)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the TLS certificate was refused: {exc.verify_message}"
    if isinstance(exc, socket.gaierror):
        return f"the name does not resolve: {exc.strerror}"
    if isinstance(exc, http.client.HTTPException):
        return f"not an HTTP answer: {type(exc).__name__} {exc}".strip()
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"


def same_site(first: str, other: str, connect_to: str | None) -> bool:
    """May a redirect to ``other`` be followed?  On the same host; with connect_to, also the same scheme and port."""
    a, b = urlsplit(first), urlsplit(other)
    if a.hostname != b.hostname:
        return False
    return not connect_to or (a.scheme, a.port) == (b.scheme, b.port)


def fetch(url: str, *, connect_to: str | None = None, timeout: float = 30.0) -> Answer:
    """GET ``url``, following redirects that stay on the site; never raises for a network failure."""
    started = time.monotonic()
    current, hops = url, list[str]()
    for _ in range(MAX_REDIRECTS + 1):
        conn = _connection(current, timeout, connect_to)
        try:
            conn.request("GET", _path(current), headers={"User-Agent": USER_AGENT, "Accept": "text/html, */*"})
            response = conn.getresponse()
            body = response.read(BODY_LIMIT)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return Answer(url, current, error=_why(exc), redirects=tuple(hops), seconds=time.monotonic() - started)
        finally:
            conn.close()
        location = response.getheader("Location")
        if response.status in REDIRECTS and location:
            target = urljoin(current, location)
            hops.append(f"{response.status} -> {_path(target) if same_site(url, target, connect_to) else target}")
            if same_site(url, target, connect_to):
                current = target
                continue
            return Answer(url, current, response.status, response.reason, redirects=tuple(hops[:-1]),
                          elsewhere=target, seconds=time.monotonic() - started)  # fmt: skip
        text = body.decode(response.headers.get_content_charset() or "utf-8", errors="replace")
        return Answer(url, current, response.status, response.reason, text, redirects=tuple(hops),
                      seconds=time.monotonic() - started)  # fmt: skip
    return Answer(url, current, error=f"more than {MAX_REDIRECTS} redirects", redirects=tuple(hops),
                  seconds=time.monotonic() - started)  # fmt: skip


def fetch_until_up(
    url: str,
    *,
    connect_to: str | None = None,
    wait: float = 60.0,
    timeout: float = 30.0,
    pause: Callable[[float], None] = time.sleep,
    waiting: Callable[[str], None] = lambda _: None,
) -> Answer:
    """Like fetch, but asked again for up to ``wait`` seconds while nothing answers or a proxy says 502-504.

    Right after a restart the app server may still be loading: that is not yet a failure.
    ``waiting`` hears why it asks again, each time.
    """
    deadline = time.monotonic() + wait
    started = time.monotonic()
    while True:
        answer = fetch(url, connect_to=connect_to, timeout=timeout)
        if not answer.starting or time.monotonic() >= deadline:
            return replace(answer, seconds=time.monotonic() - started)
        waiting(f"{answer.error or answer.status}; asking again for up to {deadline - time.monotonic():.0f} s")
        pause(1.0)
