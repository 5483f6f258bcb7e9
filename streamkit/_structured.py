"""Structured output, request side: a Python type as Cohere's JSON-schema ``response_format``.

``chat_stream(response_format=Model)`` sends ``{"type": "json_object", "json_schema": ...}``
with the JSON schema pydantic generates for the type (the SDK's ``cohere.v2``
``JsonObjectResponseFormatV2`` has exactly these two fields). Cohere enforces a given schema
by constrained decoding; there is no separate ``strict`` switch to set, so the schema goes
out as pydantic writes it (``$defs``/``$ref`` for nested models, ``enum``, ``anyOf`` with
``null`` for optional fields, ``required`` for fields without a default). Checked here,
before anything is sent: pydantic can build a schema for the type, and its top level is an
object (every schema in Cohere's structured-output docs is; we assume the API requires it,
as other providers' JSON modes do, and fail early rather than with a 400). Constraints the
model may not honour (lengths, ranges, patterns) are still checked by pydantic when the
reply is validated (``operators.partial_model``).
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import PydanticUserError, TypeAdapter

from streamkit.errors import InvalidSchemaError

__all__ = ["is_response_type", "json_response_format", "schema_response_format"]


def is_response_type(value: object) -> bool:
    """Whether a ``response_format`` argument is a type to build a schema from.

    Classes (a pydantic model, a dataclass, a ``TypedDict``) and typing forms
    (``list[Item]``, ``Annotated[...]``, unions) are; a dict, a pydantic instance (such as
    the SDK's ``JsonObjectResponseFormatV2``) or ``None`` is sent as given.
    """
    if isinstance(value, type):
        return True
    return typing.get_origin(value) is not None


def schema_response_format(schema: Any) -> dict[str, Any]:
    """Wrap a JSON schema as Cohere's ``response_format``, checking its top level.

    Raises:
        InvalidSchemaError: If ``schema`` is not a JSON object whose ``type`` is ``"object"``.
    """
    if not isinstance(schema, dict):
        raise InvalidSchemaError(f"a JSON schema is a JSON object, not {type(schema).__name__}")
    top = schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        # A recursive model is a reference into $defs at the top (pydantic writes it so).
        top = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    if not isinstance(top, dict) or top.get("type") != "object":
        shown = top.get("type", "no type") if isinstance(top, dict) else "no type"
        raise InvalidSchemaError(
            f"Cohere's JSON mode needs an object at the top of the schema, not {shown!r}:"
            " wrap it in a model (class Answer(BaseModel): items: list[Item])"
        )
    return {"type": "json_object", "json_schema": schema}


def json_response_format(response_type: Any) -> dict[str, Any]:
    """Return Cohere's ``response_format`` asking for JSON that validates as ``response_type``.

    ``chat_stream(response_format=Model)`` calls this for you; use it to see or keep the
    schema that is sent.

    Example:
        >>> from pydantic import BaseModel
        >>> from streamkit import json_response_format
        >>> class City(BaseModel):
        ...     name: str
        ...     population: int | None = None
        >>> format = json_response_format(City)
        >>> format["type"], format["json_schema"]["required"]
        ('json_object', ['name'])

    Args:
        response_type: A pydantic model class, or any type pydantic's ``TypeAdapter`` takes
            whose schema is an object (a ``TypedDict``, a dataclass).

    Raises:
        InvalidSchemaError: If pydantic cannot build a JSON schema for the type, or the
            schema is not an object at the top level.
    """
    try:
        schema = TypeAdapter(response_type).json_schema()
    except (PydanticUserError, TypeError) as error:
        raise InvalidSchemaError(
            f"no JSON schema for response_format {response_type!r}: {error}"
        ) from error
    return schema_response_format(schema)
