"""Headers are checked before anything is sent: names are tokens, values plain ASCII text."""

from __future__ import annotations

import pytest

from streamkit import AsyncClient, Client
from streamkit import errors as E
from streamkit._request import check_header

SECRET = "sk-header-canary-0123456789"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("X-Trace", "abc 123\t;=,/", id="plain"),
        pytest.param("x!#$%&'*+-.^_`|~9", "v", id="every-token-character"),
        pytest.param("X-Empty", "", id="empty-value"),
    ],
)
def test_good_headers_pass(name: str, value: str) -> None:
    check_header(name, value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        pytest.param("X-A", f"{SECRET}\r\nX-Injected: 1", "a CR", id="crlf"),
        pytest.param("X-A", f"{SECRET}\nX-Injected: 1", "an LF", id="lf"),
        pytest.param("X-A", f"{SECRET}\x00", "a NUL", id="nul"),
        pytest.param("X-A", f"{SECRET}\x7f", "a control character", id="del"),
        pytest.param("X-A", f"{SECRET}\x1b[31m", "a control character", id="escape"),
        pytest.param("X-A", f"{SECRET}é", "a non-ASCII character", id="non-ascii"),
        pytest.param("X A", "v", "not a valid HTTP token", id="space-in-name"),
        pytest.param("X-A:", "v", "not a valid HTTP token", id="colon-in-name"),
        pytest.param("X-A\r\n", "v", "not a valid HTTP token", id="crlf-in-name"),
        pytest.param("", "v", "not a valid HTTP token", id="empty-name"),
    ],
)
def test_bad_headers_are_refused_without_quoting_the_value(
    name: str, value: str, says: str
) -> None:
    with pytest.raises(E.InvalidHeaderError) as caught:
        check_header(name, value)
    assert says in str(caught.value)
    assert SECRET not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_clients_refuse_bad_headers_when_the_call_is_made() -> None:
    smuggle = "a\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    with pytest.raises(E.InvalidHeaderError):
        Client("key", base_url="http://127.0.0.1:9", client_name=smuggle)
    with pytest.raises(E.InvalidHeaderError):
        AsyncClient("key", base_url="http://127.0.0.1:9", client_name=smuggle)
    with pytest.raises(E.InvalidHeaderError):
        Client("key\r\nX: 1", base_url="http://127.0.0.1:9")
    with Client("key", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(E.InvalidHeaderError):
            client.chat_stream(
                model="m",
                messages=[],
                request_options={"additional_headers": {"X-Evil": smuggle}},
            )
        with pytest.raises(E.InvalidHeaderError):
            client.chat(
                model="m", messages=[], request_options={"additional_headers": {"X\n": "v"}}
            )
