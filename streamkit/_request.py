"""Building the ``/v2/chat`` request: the same JSON body the official SDK sends.

Arguments left at :data:`NOT_GIVEN` are omitted; an explicit ``None`` is sent as ``null``,
as the SDK does. Typed models (pydantic, including the SDK's own types) are dumped by alias
with the fields that were set plus every non-None default, again as the SDK does; plain
dicts and lists pass through. A type as ``response_format`` (a pydantic model class, ...)
becomes Cohere's JSON-schema format (see ``_structured``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

from pydantic import BaseModel

from streamkit._structured import is_response_type, json_response_format
from streamkit.errors import InvalidHeaderError

__all__ = ["NOT_GIVEN", "NotGiven", "RequestOptions", "build_chat_body", "check_header"]


class NotGiven:
    """The type of :data:`NOT_GIVEN`: an argument the caller did not pass."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()
"""Sentinel for "argument not passed": such arguments are left out of the request body."""


class RequestOptions(TypedDict, total=False):
    """Per-request settings, named as in the official SDK's ``RequestOptions``."""

    timeout_in_seconds: float
    """Overrides the client's timeout for this request."""
    max_retries: int
    """Overrides the client's retry count for this request."""
    additional_headers: dict[str, Any]
    """Extra HTTP headers."""
    additional_query_parameters: dict[str, Any]
    """Extra query parameters."""
    additional_body_parameters: dict[str, Any]
    """Extra top-level body fields, merged over the others."""


# The SDK's parameter order, which is also the order of keys in its JSON body.
CHAT_PARAMETERS: Final = (
    "model",
    "messages",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
    "priority",
)


def build_chat_body(
    arguments: Mapping[str, Any],
    *,
    stream: bool,
    request_options: RequestOptions | None = None,
) -> dict[str, Any]:
    """Return the JSON body for ``/v2/chat`` from the chat arguments.

    Args:
        arguments: The keyword arguments of ``chat_stream``/``chat`` (``model``, ...).
        stream: Whether to ask for a stream.
        request_options: May add ``additional_body_parameters``.
    """
    body: dict[str, Any] = {}
    for name in CHAT_PARAMETERS:
        value = arguments.get(name, NOT_GIVEN)
        if value is NOT_GIVEN:
            continue
        if name == "response_format" and is_response_type(value):
            value = json_response_format(value)  # a model class: Cohere's JSON-schema mode
        body[name] = to_jsonable(value)
    body["stream"] = stream
    if request_options and request_options.get("additional_body_parameters"):
        body.update(to_jsonable(request_options["additional_body_parameters"]))
    return body


def to_jsonable(value: Any) -> Any:
    """Turn models, mappings and sequences into plain JSON-ready values."""
    if isinstance(value, BaseModel):
        # Fields the caller set (even to None) plus every non-None default, by alias.
        set_fields = value.model_dump(mode="json", by_alias=True, exclude_unset=True)
        defaults = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return _deep_union(set_fields, defaults)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Sequence):
        return [to_jsonable(v) for v in value]
    return value


def _deep_union(first: Any, second: Any) -> Any:
    if isinstance(first, dict) and isinstance(second, dict):
        merged = dict(first)
        for key, value in second.items():
            merged[key] = _deep_union(merged[key], value) if key in merged else value
        return merged
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        return [_deep_union(a, b) for a, b in zip(first, second, strict=True)]
    return first


# RFC 9110 §5.1: a field name is a token; §5.5: a field value is visible ASCII, spaces and
# tabs (obs-text is legal but httpx sends str values as ASCII, so it is refused here too).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e]")


def check_header(name: str, value: str) -> None:
    """Refuse a header that must not go on the wire, before anything is sent.

    Raises:
        InvalidHeaderError: For a name that is not an RFC 9110 token, or a value with a
            CR, LF, NUL, another control character or a non-ASCII character. The message
            names the header but never quotes its value.
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InvalidHeaderError(
            f"the header name {str(name)[:40]!r} is not a valid HTTP token (RFC 9110 §5.1)"
        )
    bad = _BAD_VALUE.search(value)
    if bad is None:
        return
    char = bad.group()
    kind = {"\r": "a CR", "\n": "an LF", "\0": "a NUL"}.get(char)
    if kind is None:
        kind = "a control character" if ord(char) < 0x80 else "a non-ASCII character"
    raise InvalidHeaderError(
        f"the value of header {name!r} has {kind} at position {bad.start()}; nothing was sent"
    )
