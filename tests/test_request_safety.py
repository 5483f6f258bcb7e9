"""What a request must never do, on every transport: checked on a raw loopback server.

* (a) A CR, LF or NUL in a header name or value (``additional_headers``, ``client_name``)
  is refused with ``InvalidHeaderError`` before any connection is made: written as it is,
  it would split the header block and smuggle a second request (RFC 9110 §5.5: a field
  value never holds CR, LF or NUL).
* (b) A POST is not idempotent (RFC 9110 §9.2.2): with ``max_retries=0`` exactly one
  request reaches the server, also when a pooled keep-alive connection turns out to be
  closed, the connection is reset, or the read times out; with ``max_retries=2`` at most
  three.
* (c) A response header that is not ASCII (``cache-zürich`` in latin-1 or UTF-8) does not
  get in the way of the stream.
* (d) Proxies from the environment: the httpx transports send the request to the proxy
  (absolute-form target), the native transport (on either parser), which has no proxy
  support, refuses with
  ``ProxyNotSupportedError`` without connecting anywhere, and streams directly where
  ``NO_PROXY`` covers the target.
* (e) The API key, and a key-like header the caller added, echoed back by a server in a
  response header, never reach an error's text, headers, request or causes, nor a log.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Iterator

import pytest

from streamkit import AsyncClient, Client
from streamkit import errors as E
from streamkit._request import RequestOptions
from tests.http_cases import CHUNKED, EVENT_TYPES, SSE_EVENTS, SSE_TYPE, chunked, head
from tests.raw_server import RawServer, Reply, Then
from tests.reliability.support import fast_backoff
from tests.stream_runner import NATIVE, Outcome, Transport, run_streams, transport_params

pytestmark = pytest.mark.timeout(60)

SMUGGLE = "a\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
"""The classic: end the header block early and append a second request."""

OK = head(SSE_TYPE, CHUNKED) + chunked()
"""A complete, valid Cohere stream, chunked."""


def ok(then: Then = "close") -> Reply:
    return Reply((OK,), then)


def _completed(outcome: Outcome) -> bool:
    return outcome.error is None and outcome.events == EVENT_TYPES


def _cut(*servers: RawServer) -> Callable[[], None]:
    """Drop the connections of every server in ``servers`` (for a run that hangs)."""

    def cut() -> None:
        for server in servers:
            server.disconnect_all()

    return cut


def _asyncio_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("asyncio") and r.levelno >= logging.ERROR
    ]


# ----------------------------------------------------------------------------- (a) injection

_BAD_HEADERS = [
    pytest.param({"X-Trace": "a\r\nX-Injected: 1"}, id="value-crlf"),
    pytest.param({"X-Trace": "a\nX-Injected: 1"}, id="value-lf"),
    pytest.param({"X-Trace": "a\rX-Injected: 1"}, id="value-cr"),
    pytest.param({"X-Trace": "a\x00b"}, id="value-nul"),
    pytest.param({"X-Trace": SMUGGLE}, id="value-smuggle"),
    pytest.param({"X-Trace\r\nX-Injected": "1"}, id="name-crlf"),
    pytest.param({"X-Trace\n": "1"}, id="name-lf"),
    pytest.param({"X-Trace\x00": "1"}, id="name-nul"),
    pytest.param(
        {"X-Trace: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\nX-B": "1"}, id="name-smuggle"
    ),
]


def _assert_refused(outcome: Outcome, error: type[BaseException], server: RawServer) -> None:
    """The stream failed with ``error`` and no connection, byte or request reached ``server``."""
    server.settle()
    seen = [f"{r.method} {r.target}" for r in server.requests]
    problems = []
    if not isinstance(outcome.error, error) or outcome.events:
        problems.append(f"the stream: {outcome}")
    if server.accepts or server.bytes_received or seen:
        problems.append(
            f"the server: {server.accepts} connection(s), {server.bytes_received} bytes,"
            f" requests {seen}"
        )
    assert not problems, f"expected {error.__name__} before connecting; got " + "; ".join(problems)


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize("headers", _BAD_HEADERS)
def test_control_characters_in_additional_headers_are_refused_before_connecting(
    transport: Transport, headers: dict[str, str]
) -> None:
    # Imported here, not at the top: a missing class fails these tests, not the collection.
    from streamkit.errors import InvalidHeaderError

    with RawServer(ok("keep")) as server:  # keep: a smuggled request would be read too
        (outcome,) = run_streams(
            transport,
            server.base_url,
            request_options={"additional_headers": headers},
            on_hang=server.disconnect_all,
        )
        _assert_refused(outcome, InvalidHeaderError, server)


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("my-app\r\nX-Injected: 1", id="crlf"),
        pytest.param("my-app\n", id="lf"),
        pytest.param("my\x00app", id="nul"),
        pytest.param(SMUGGLE, id="smuggle"),
    ],
)
def test_control_characters_in_client_name_are_refused_before_connecting(
    transport: Transport, name: str
) -> None:
    from streamkit.errors import InvalidHeaderError

    with RawServer(ok("keep")) as server:
        (outcome,) = run_streams(
            transport, server.base_url, client_name=name, on_hang=server.disconnect_all
        )
        _assert_refused(outcome, InvalidHeaderError, server)


@pytest.mark.parametrize("transport", transport_params())
def test_a_header_with_ordinary_punctuation_is_sent(transport: Transport) -> None:
    """The check refuses control characters only: tabs, quotes and commas go through."""
    headers = {"X-Trace": 'a\tb "c", d;e=f'}
    with RawServer(ok()) as server:
        (outcome,) = run_streams(
            transport,
            server.base_url,
            request_options={"additional_headers": headers},
            on_hang=server.disconnect_all,
        )
        assert _completed(outcome), outcome
        (request,) = server.requests
        assert b'\r\nX-Trace: a\tb "c", d;e=f\r\n' in request.head


# ----------------------------------------------------------------------------- (b) one POST

_CASES_B = [
    pytest.param("stale-closed-after-response", id="stale-closed-after-response"),
    pytest.param("stale-closed-on-next-request", id="stale-closed-on-next-request"),
    pytest.param("reset-before-first-byte", id="reset-before-first-byte"),
    pytest.param("read-timeout", id="read-timeout"),
]


def _scenario(
    name: str,
) -> tuple[tuple[Reply, ...], int, RequestOptions | None, type[BaseException] | None]:
    """The server's replies, how many streams the client runs, its request options, and
    the error the last stream must end with (None: it completes).
    """
    if name == "stale-closed-after-response":
        # The server closes the connection once the first answer is sent; the client
        # pools it, and must notice before (or instead of) sending the next POST on it.
        return (ok("close"),), 2, None, None
    if name == "stale-closed-on-next-request":
        # The race a keep-alive timeout causes: the next POST arrives, the server closes
        # without answering. The server has it: resending it is a second POST.
        return (ok("keep"), Reply((), "close")), 2, None, E.APIConnectionError
    if name == "reset-before-first-byte":
        return (Reply((), "reset"),), 1, None, E.APIConnectionError
    assert name == "read-timeout"
    return (Reply((), "hold"),), 1, {"timeout_in_seconds": 0.5}, E.APITimeoutError


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize("scenario", _CASES_B)
@pytest.mark.parametrize(
    "max_retries", [pytest.param(0, id="retries-0"), pytest.param(2, id="retries-2")]
)
def test_a_post_reaches_the_server_once_per_try(
    transport: Transport, scenario: str, max_retries: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    replies, count, options, error = _scenario(scenario)
    with RawServer(*replies) as server:
        before_last: list[int] = []

        def between() -> None:
            if scenario == "stale-closed-after-response":
                server.wait_for(lambda: server.closes >= 1)  # the FIN is on its way
            before_last.append(len(server.requests))

        def prepare(client: Client | AsyncClient) -> None:
            fast_backoff(client, max_retries)

        outcomes = run_streams(
            transport,
            server.base_url,
            count=count,
            between=between,
            prepare=prepare,
            request_options=options,
            max_retries=max_retries,
            on_hang=server.disconnect_all,
        )
        earlier = before_last[0] if before_last else 0
        if count == 2:
            assert _completed(outcomes[0]), outcomes[0]
            assert earlier == 1, "the first stream sent more than one POST"
        last = outcomes[-1]
        assert last.error is None or isinstance(last.error, E.StreamkitError), last
        posts = server.requests[earlier:]
        assert all(r.method == "POST" and r.path == "/v2/chat" for r in posts), posts
        if max_retries == 0:
            assert len(posts) == 1, f"{len(posts)} POSTs reached the server for one stream"
        else:
            assert 1 <= len(posts) <= 3, f"{len(posts)} POSTs for one stream with 2 retries"
        if error is None:
            assert _completed(last), last
        else:
            assert isinstance(last.error, error), last
    assert not _asyncio_errors(caplog), _asyncio_errors(caplog)


# ----------------------------------------------------------------------------- (c) non-ASCII


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"cache-z\xfcrich", id="latin-1"),
        pytest.param("cache-zürich".encode(), id="utf-8"),
    ],
)
def test_a_non_ascii_response_header_streams_normally(
    transport: Transport, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    response = head(SSE_TYPE, CHUNKED, b"X-Served-By: " + value) + chunked()
    with RawServer(Reply((response,))) as server:
        (outcome,) = run_streams(transport, server.base_url, on_hang=server.disconnect_all)
    assert _completed(outcome), outcome
    assert not _asyncio_errors(caplog), _asyncio_errors(caplog)


# ----------------------------------------------------------------------------- (d) proxies

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No proxy variable set, in either case, until the test sets one."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield monkeypatch


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY", "http_proxy"])
def test_a_proxy_from_the_environment_is_used_or_refused(
    transport: Transport, variable: str, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    with RawServer(ok()) as target, RawServer(ok()) as proxy:
        clean_proxy_env.setenv(variable, proxy.base_url)
        (outcome,) = run_streams(
            transport,
            target.base_url,
            on_hang=_cut(target, proxy),
        )
        target.settle()
        proxy.settle()
        assert target.accepts == 0, "the request bypassed the proxy"
        if transport in NATIVE:
            from streamkit.errors import ProxyNotSupportedError

            assert isinstance(outcome.error, ProxyNotSupportedError), outcome
            assert proxy.accepts == 0
        else:
            assert _completed(outcome), outcome
            assert [r.target for r in proxy.requests] == [f"{target.base_url}/v2/chat"]


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize(
    "no_proxy",
    [
        pytest.param("127.0.0.1", id="address"),
        pytest.param("example.com,127.0.0.1", id="list"),
        pytest.param("*", id="star"),
    ],
)
def test_no_proxy_covering_the_target_streams_directly(
    transport: Transport, no_proxy: str, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    with RawServer(ok()) as target, RawServer(ok()) as proxy:
        clean_proxy_env.setenv("HTTP_PROXY", proxy.base_url)
        clean_proxy_env.setenv("NO_PROXY", no_proxy)
        (outcome,) = run_streams(
            transport,
            target.base_url,
            on_hang=_cut(target, proxy),
        )
        assert _completed(outcome), outcome
        proxy.settle()
        assert proxy.accepts == 0
        assert [r.target for r in target.requests] == ["/v2/chat"]


@pytest.mark.parametrize("transport", transport_params())
def test_an_https_proxy_does_not_apply_to_an_http_target(
    transport: Transport, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    with RawServer(ok()) as target, RawServer(ok()) as proxy:
        clean_proxy_env.setenv("HTTPS_PROXY", proxy.base_url)
        (outcome,) = run_streams(transport, target.base_url, on_hang=target.disconnect_all)
        assert _completed(outcome), outcome
        proxy.settle()
        assert proxy.accepts == 0


# ----------------------------------------------------------------------------- (e) masking


@pytest.fixture
def secrets() -> tuple[str, str]:
    """A Cohere-style API key and a key of no known shape, neither of which can occur by chance."""
    return "co-CANARY-" + uuid.uuid4().hex, "sk-live-" + uuid.uuid4().hex


def _echoing(kind: str, key: str, other: str) -> Reply:
    """A server that sends both secrets back in response headers, then fails as ``kind`` says."""
    secret, extra = key.encode(), other.encode()
    echo = (b"X-Echo-Authorization: Bearer " + secret, b"X-Echo-Api-Key: " + extra)
    if kind == "401":
        body = b'{"message": "invalid api token: %s", "key": "%s"}' % (secret, extra)
        json_type, length = b"Content-Type: application/json", b"Content-Length: %d" % len(body)
        return Reply((head(json_type, length, *echo, status=b"HTTP/1.1 401 Unauthorized") + body,))
    if kind == "bad-header":
        # A header line without a colon, made of the secrets: parsers quote a bad line.
        bad = b"Bearer " + secret + b" " + extra
        return Reply((head(SSE_TYPE, CHUNKED, *echo, bad) + chunked(),))
    start = head(SSE_TYPE, CHUNKED, *echo) + chunked(SSE_EVENTS[:2], last=b"")
    if kind == "bad-chunk":
        # A chunk-size line made of the secrets, after two good chunks.
        return Reply((start + secret + b"\r\n" + extra + b"\r\n",))
    assert kind == "reset"
    return Reply((start,), "reset")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        item = todo.pop()
        if id(item) not in seen:
            seen.add(id(item))
            yield item
            todo.extend(e for e in (item.__cause__, item.__context__) if e is not None)


def _shown(error: BaseException) -> dict[str, str]:
    """Everything an error shows, by where it shows it."""
    shown = {
        "str(error)": str(error),
        "repr(error)": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
    }
    headers = getattr(error, "headers", None)
    if headers is not None:
        shown["error.headers"] = repr(dict(headers))
    try:
        request = getattr(error, "request", None)
    except RuntimeError:  # an httpx error without a request
        request = None
    if request is not None:
        shown["error.request.headers"] = repr(list(request.headers.multi_items()))
        shown["error.request.url"] = str(request.url)
    for n, item in enumerate(_chain(error)):
        shown[f"chain[{n}] {type(item).__name__}"] = f"{item} {item!r} {item.args!r}"
        for name in ("body", "error", "details"):
            if name in vars(item):
                shown[f"chain[{n}].{name}"] = repr(vars(item)[name])
    return shown


@pytest.mark.parametrize("transport", transport_params())
@pytest.mark.parametrize("kind", ["401", "bad-chunk", "bad-header", "reset"])
def test_echoed_credentials_never_reach_an_error_or_a_log(
    transport: Transport,
    kind: str,
    secrets: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, other = secrets
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "h11", "streamkit", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    with RawServer(_echoing(kind, key, other)) as server:
        (outcome,) = run_streams(
            transport,
            server.base_url,
            api_key=key,
            request_options={"additional_headers": {"X-Api-Key": other}},
            on_hang=server.disconnect_all,
        )
        (request,) = server.requests
        assert key.encode() in request.head and other.encode() in request.head  # sent, once
    assert isinstance(outcome.error, E.StreamkitError), outcome
    leaks = [
        where
        for where, text in _shown(outcome.error).items()
        if key in text or other in text or key[3:] in text
    ]
    leaks += [
        f"log record of {record.name}"
        for record in caplog.records
        if any(
            secret in text
            for secret in (key, other)
            for text in (record.getMessage(), repr(record.args), record.exc_text or "")
        )
    ]
    assert not leaks, f"the credentials show in {leaks}"
