"""S: the API key appears nowhere but the Authorization header it travels in.

A canary key ("co-CANARY-" + a uuid) is used for every request, every logger runs at
DEBUG, and each scenario (success, 401, 500 with retries, timeouts, a mid-stream drop, a
malformed event, a refused connection) is searched for it: log records, reprs (HTML and
pretty reprs too), exception text, tracebacks, notes, chained causes, the request URL,
other headers, recordings.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reactivex import operators as ops

from streamkit import (
    AsyncClient,
    Client,
    record,
    to_async_iterator,
    to_iterator,
)
from streamkit import errors as E
from streamkit._request import RequestOptions
from streamkit._retry import RetryPolicy
from tests.reliability.support import ASYNC_MODES, MESSAGES, Outcome, transport_of
from tests.scripted_server import (
    Chunk,
    Finish,
    Headers,
    RecordedRequest,
    Reset,
    ScriptedServer,
    Stall,
    Step,
    json_response,
    sse_events,
)
from tests.test_client import sse_ok, text_stream
from tests.transports import async_client

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def canary() -> str:
    """F3: a key that cannot appear by accident."""
    return "co-CANARY-" + uuid.uuid4().hex


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Every record as a handler would write it (tracebacks included), plus its fields."""
        out = io.StringIO()
        for item in self.records:
            out.write(self.format(item) + "\n")
            out.write(repr(item.__dict__) + "\n")
        return out.getvalue()


@pytest.fixture
def all_logs() -> Iterator[_Capture]:
    """F3: every logger at DEBUG (root, httpx, httpcore, streamkit, asyncio), captured."""
    capture = _Capture()
    root = logging.getLogger()
    names = ["httpx", "httpcore", "streamkit", "asyncio"]
    saved = [(root, root.level)] + [
        (logging.getLogger(n), logging.getLogger(n).level) for n in names
    ]
    root.addHandler(capture)
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for logger, level in saved:
            logger.setLevel(level)


# ----------------------------------------------------------------------------- inspection


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def error_text(error: BaseException) -> str:
    """Everything an error shows: str, repr, the formatted traceback, notes, causes."""
    parts = ["".join(traceback.format_exception(type(error), error, error.__traceback__))]
    for item in _chain(error):
        parts += [str(item), repr(item), repr(item.args)]
        parts += [str(note) for note in getattr(item, "__notes__", [])]
        for name in ("request", "response"):
            try:
                value = getattr(item, name, None)
            except RuntimeError:  # httpx raises when an error has no request attached
                value = None
            if value is not None:
                parts += [repr(value), str(getattr(value, "url", ""))]
        # Not .event: the raw event, delivered to the caller as it came, is data.
        for name in ("body", "headers", "details", "error", "content_type"):
            if hasattr(item, name):
                parts.append(repr(getattr(item, name)))
    return "\n".join(parts)


def reprs(obj: object) -> str:
    """repr and str, and the notebook reprs when the object has them."""
    parts = [repr(obj), str(obj)]
    html = getattr(obj, "_repr_html_", None)
    if callable(html):
        parts.append(str(html()))
    bundle = getattr(obj, "_repr_mimebundle_", None)
    if callable(bundle):
        parts.append(repr(bundle()))
    pretty = pytest.importorskip("IPython.lib.pretty")
    parts.append(pretty.pretty(obj))
    return "\n".join(parts)


def key_only_in_authorization(request: RecordedRequest, key: str) -> None:
    """S5: exactly one header holds the key, and it is ``Authorization: Bearer <key>``."""
    holders = [(name, value) for name, value in request.raw_headers if key in value]
    assert holders == [("Authorization", f"Bearer {key}")], holders
    assert [n for n, _ in request.raw_headers if n.lower() == "authorization"] == ["Authorization"]
    assert key not in request.path  # not in the URL or its query
    assert key.encode() not in request.body
    assert key not in request.headers["user-agent"]


# ----------------------------------------------------------------------------- scenarios


def scenario_scripts(key: str) -> dict[str, list[list[Step]]]:
    events = text_stream("secret", " stuff")
    fast = ("retry-after-ms", "1")
    return {
        "success": [sse_ok(events)],
        # S4: the server echoes the key back, with and without "Bearer".
        "401": [
            json_response(401, {"message": f"invalid api token {key}", "echo": f"Bearer {key}"})
        ],
        "500-with-retries": [json_response(500, {"message": "oops"}, fast)] * 3,
        "first-byte-timeout": [[Stall()], [Stall()], [Stall()]],
        "idle-timeout": [[Headers(), *sse_events(events[:2], done=False), Stall()]],
        "mid-stream-drop": [[Headers(), *sse_events(events[:3], done=False), Reset()]],
        "malformed": [[Headers(), *sse_events(events[:2], done=False), Chunk(b"data: {x\n\n")]],
        "not-sse": [json_response(200, {"text": f"Bearer {key}"})],
        "stream-error": [
            sse_ok(
                [
                    *events[:3],
                    {
                        "type": "message-end",
                        "delta": {
                            "finish_reason": "ERROR",
                            "error": f"token {key} rejected",
                            "usage": {},
                        },
                    },
                ]
            )
        ],
    }


SCENARIOS = [
    "success",
    "401",
    "500-with-retries",
    "first-byte-timeout",
    "idle-timeout",
    "mid-stream-drop",
    "malformed",
    "not-sse",
    "stream-error",
]


def client_options() -> dict[str, Any]:
    return {"timeout": httpx.Timeout(5.0, read=0.1), "idle_timeout": 0.2}


def run_scenario(mode: str, base_url: str, key: str, extra: bool) -> tuple[Outcome, str]:
    """Run one stream; return its outcome and the reprs of every object involved.

    With ``extra``, the caller also passes the key in headers of their own, named as the
    ones that leaked from other SDKs: ``X-Api-Key``, ``api-key`` and ``authorization``.
    """
    options: RequestOptions = {}
    if extra:
        options["additional_headers"] = {
            "X-Api-Key": key,
            "api-key": key,
            "authorization": f"Bearer {key}",
        }
    seen: list[str] = []
    if mode.startswith("async-"):

        async def main() -> Outcome:
            async with async_client(
                key, base_url=base_url, transport=transport_of(mode), **client_options()
            ) as client:
                client._config.retry = RetryPolicy(initial_delay=0.01)
                stream = client.chat_stream(model="m", messages=MESSAGES, request_options=options)
                iterator = to_async_iterator(stream)
                seen.extend([reprs(client), reprs(stream), reprs(iterator), reprs(client._config)])
                events = []
                try:
                    async with iterator:
                        async for event in iterator:
                            events.append(event)
                except Exception as error:  # inspected below
                    return events, error
                return events, None

        return asyncio.run(main()), "\n".join(seen)
    with Client(key, base_url=base_url, **client_options()) as client:
        client._config.retry = RetryPolicy(initial_delay=0.01)
        stream = client.chat_stream(model="m", messages=MESSAGES, request_options=options)
        iterator = to_iterator(stream)
        seen.extend([reprs(client), reprs(stream), reprs(iterator), reprs(client._config)])
        seen.extend([reprs(client._config.plan(options)), reprs(client._config.retry)])
        events = []
        try:
            with iterator:
                for event in iterator:
                    events.append(event)
        except Exception as error:  # inspected below
            return (events, error), "\n".join(seen)
        return (events, None), "\n".join(seen)


@pytest.mark.parametrize("extra", [False, True], ids=["our-key", "user-headers-too"])
@pytest.mark.parametrize("mode", ["iterator", *ASYNC_MODES])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_s1_s2_s3_s5_the_key_appears_nowhere_but_in_authorization(
    scripted: ScriptedServer,
    all_logs: _Capture,
    canary: str,
    scenario: str,
    mode: str,
    extra: bool,
) -> None:
    scripts = scenario_scripts(canary)[scenario]
    scripted.enqueue(*scripts)
    (events, error), objects = run_scenario(mode, scripted.base_url, canary, extra)
    if scenario == "success":
        assert error is None and events[-1].type == "message-end"
    else:
        assert isinstance(error, E.StreamkitError), repr(error)
        assert canary not in error_text(error)
    assert all_logs.records, "nothing was logged: the capture is broken"
    assert canary not in all_logs.text()
    assert canary not in objects
    for event in events:
        if scenario != "stream-error":  # the server's own words, delivered as data
            assert canary not in repr(event)
    for request in scripted.requests:
        if not extra:
            key_only_in_authorization(request, canary)
        assert canary not in request.path


# ----------------------------------------------------------------------------- S4


@pytest.mark.parametrize("key", ["co-CANARY-{}", "plain{}", "sk_{}"])
def test_s4_an_echoed_key_is_masked_exactly_whatever_its_shape(
    scripted: ScriptedServer, key: str
) -> None:
    secret = key.format(uuid.uuid4().hex)
    scripted.enqueue(
        json_response(401, {"message": f"invalid api token {secret}", "nested": [secret]})
    )
    with Client(secret, base_url=scripted.base_url) as client:
        with to_iterator(client.chat_stream(model="m", messages=MESSAGES)) as events:
            with pytest.raises(E.UnauthorizedError) as caught:
                list(events)
    error = caught.value
    assert secret not in error_text(error)
    assert "invalid api token" in str(error)
    assert error.body == {"message": "invalid api token ***", "nested": ["***"]}


def test_s4_user_supplied_secret_headers_are_masked_in_echoes_too(
    scripted: ScriptedServer, canary: str
) -> None:
    other = "plain" + uuid.uuid4().hex
    scripted.enqueue(json_response(403, {"message": f"key {other} may not use this model"}))
    with Client(canary, base_url=scripted.base_url) as client:
        stream = client.chat_stream(
            model="m",
            messages=MESSAGES,
            request_options={"additional_headers": {"X-Api-Key": other}},
        )
        with pytest.raises(E.ForbiddenError) as caught:
            list(to_iterator(stream))
    assert other not in error_text(caught.value)


# ----------------------------------------------------------------------------- S5


@pytest.mark.parametrize("name", ["authorization", "AUTHORIZATION", "Authorization"])
def test_s5_a_user_authorization_header_replaces_ours_never_duplicates_it(
    scripted: ScriptedServer, canary: str, name: str
) -> None:
    scripted.enqueue(sse_ok(text_stream("a")))
    other = "co-OTHER-" + uuid.uuid4().hex
    with Client(canary, base_url=scripted.base_url) as client:
        stream = client.chat_stream(
            model="m",
            messages=MESSAGES,
            request_options={"additional_headers": {name: f"Bearer {other}"}},
        )
        assert list(to_iterator(stream))[-1].type == "message-end"
    request = scripted.requests[0]
    authorizations = [v for n, v in request.raw_headers if n.lower() == "authorization"]
    assert authorizations == [f"Bearer {other}"]  # the caller's, once
    assert canary not in json.dumps(request.raw_headers)


def test_s5_the_key_travels_only_in_the_authorization_header(
    scripted: ScriptedServer, canary: str
) -> None:
    scripted.enqueue(sse_ok(text_stream("a")))
    with Client(canary, base_url=scripted.base_url, client_name="my-app") as client:
        stream = client.chat_stream(
            model="m",
            messages=MESSAGES,
            request_options={
                "additional_query_parameters": {"q": "1"},
                "additional_body_parameters": {"extra": True},
            },
        )
        assert list(to_iterator(stream))[-1].type == "message-end"
    request = scripted.requests[0]
    key_only_in_authorization(request, canary)
    assert request.path == "/v2/chat?q=1"


# ----------------------------------------------------------------------------- S6


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_s6_a_missing_key_names_the_variable_and_nothing_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, canary: str, cls: type[Client] | type[AsyncClient]
) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.setenv("SOME_OTHER_SECRET", canary)
    with pytest.raises(E.MissingAPIKeyError) as caught:
        cls()
    error = caught.value
    assert "CO_API_KEY" in str(error)
    assert "api_key=" in str(error)
    assert canary not in error_text(error)
    assert isinstance(error, E.StreamkitError)


def test_s6_an_empty_key_is_missing_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_KEY", "")
    with pytest.raises(E.MissingAPIKeyError, match="CO_API_KEY"):
        Client()


# ----------------------------------------------------------------------------- S7


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param('{"type": "content-delta", "index": 0, "text": "CONTENT"}', id="wrong-shape"),
        pytest.param('{"type": "content-delta", "delta": "CONTENT', id="invalid-json"),
        pytest.param('"CONTENT"', id="not-an-object"),
    ],
)
def test_s7_logs_about_bad_events_name_type_and_size_not_content(
    scripted: ScriptedServer, all_logs: _Capture, bad: str
) -> None:
    marker = "USER-TEXT-" + uuid.uuid4().hex
    payload = bad.replace("CONTENT", marker)
    events = text_stream("x")
    unknown = {"type": "brand-new-event", "text": marker}
    scripted.enqueue(
        [
            Headers(),
            *sse_events([events[0], unknown], done=False),
            Chunk(f"data: {payload}\n\n".encode()),
            Finish(),
        ]
    )
    with Client("k", base_url=scripted.base_url) as client:
        with pytest.raises(E.MalformedEventError) as caught:
            list(to_iterator(client.chat_stream(model="m", messages=MESSAGES)))
    streamkit_logs = [r for r in all_logs.records if r.name.startswith("streamkit")]
    assert len(streamkit_logs) == 1  # one warning for the malformed event, none for unknown
    message = streamkit_logs[0].getMessage()
    assert str(len(payload)) in message
    assert marker not in all_logs.text()
    assert marker not in str(caught.value) and marker not in repr(caught.value)
    assert caught.value.event.data == payload  # the raw event rides on the error itself


# ----------------------------------------------------------------------------- other sinks


def test_a_recording_of_a_failed_stream_holds_no_key(
    scripted: ScriptedServer, canary: str, tmp_path: Path
) -> None:
    scripted.enqueue(json_response(401, {"message": f"invalid api token {canary}"}))
    path = tmp_path / "reply.sse"
    with Client(canary, base_url=scripted.base_url) as client:
        stream = client.chat_stream(model="m", messages=MESSAGES).pipe(record(path), ops.take(10))
        with pytest.raises(E.UnauthorizedError):
            list(to_iterator(stream))
    assert "invalid api token" in path.read_text()
    assert canary not in path.read_text()
