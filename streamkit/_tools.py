"""Tools the model may call: their JSON schema, argument validation and the call itself.

A :class:`Tool` is a name, a description, a JSON schema of its parameters and a Python
function (sync or async). :meth:`Tool.from_function` (and the :func:`tool` decorator)
derive all of it from the function: the name from ``__name__``, the description from the
docstring's summary, and the schema from the signature's type hints through pydantic, each
parameter described by its line in a Google-style ``Args:`` section.

Whichever way a tool was made, its arguments are checked against the function's signature
with pydantic before the call (a parameter without a hint accepts any JSON value), so the
function only ever sees arguments it declared, converted to its hints' types. What the model
gets back is decided here too: :func:`tool_message` shapes a result or an error as a
Cohere V2 ``tool`` message. Nothing here does I/O or runs anything concurrently: the
drivers in ``_runner`` do.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pydantic_core
from pydantic import ConfigDict, Field

from streamkit.errors import ToolDefinitionError, ToolError

__all__ = ["Tool", "as_tools", "jsonable_result", "tool", "tool_message"]

# Sections that end the summary and the Args: section of a Google-style docstring.
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|"
    r"Attributes|See Also|Warnings?|Todo):\s*$"
)
# One argument line: ``name (type): description`` or ``name: description``.
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def _docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (the text before the first section) and the ``Args:`` descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    described: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    base_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        header = _SECTION.match(stripped) if not line.startswith(" ") else None
        if header is not None:
            section = header.group(1)
            current, base_indent = None, None
            continue
        if section is None:
            summary.append(stripped)
            continue
        if section not in ("Args", "Arguments", "Parameters", "Params") or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if base_indent is None:
            base_indent = indent
        match = _ARG_LINE.match(stripped)
        if indent <= base_indent and match is not None:
            current = match.group(1)
            described[current] = match.group(2).strip()
        elif current is not None:
            described[current] = f"{described[current]} {stripped}".strip()
    text = " ".join(" ".join(summary).split())
    return text, described


def _arguments_model(
    name: str, function: Callable[..., Any], descriptions: Mapping[str, str]
) -> type[pydantic.BaseModel]:
    """A pydantic model of the function's keyword arguments (unknown keys forbidden)."""
    try:
        signature = inspect.signature(function)
        # A callable object's hints are on its __call__; a partial's on the function inside.
        target: Any = function
        if isinstance(function, functools.partial):
            target = function.func
        elif not inspect.isroutine(function):
            target = type(function).__call__
        hints = typing.get_type_hints(target, include_extras=True)
    except (TypeError, ValueError, NameError) as error:
        raise ToolDefinitionError(f"tool {name!r}: cannot read its signature ({error})") from error
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {parameter.name!r} cannot be passed by name "
                "(*args, **kwargs and positional-only parameters are not supported)"
            )
        if parameter.name.startswith("_"):
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {parameter.name!r} starts with '_', which a JSON "
                "schema property built by pydantic cannot"
            )
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        description = descriptions.get(parameter.name)
        fields[parameter.name] = (annotation, Field(default, description=description))
    try:
        return pydantic.create_model(
            f"{name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as e:
        raise ToolDefinitionError(
            f"tool {name!r}: pydantic cannot model its parameters ({e})"
        ) from e


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the titles pydantic invents (``"City"`` for ``city``): the model needs none."""
    schema.pop("title", None)
    for sub in schema.get("properties", {}).values():
        if isinstance(sub, dict):
            sub.pop("title", None)
    return schema


def _is_async(function: Callable[..., Any]) -> bool:
    target = function.func if isinstance(function, functools.partial) else function
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - an async __call__ counts too
    return call is not None and inspect.iscoroutinefunction(call)


@dataclass(frozen=True)
class Tool:
    """A tool the model may call: name, description, parameters' JSON schema and function.

    Build one from a function with :meth:`from_function` or the :func:`tool` decorator, or
    give the schema yourself. Either way the arguments are validated against the
    function's signature before each call. A ``Tool`` is callable like its function.

    Example:
        >>> def add(a: int, b: int = 1) -> int:
        ...     '''Add two numbers.
        ...
        ...     Args:
        ...         a: The first number.
        ...         b: The second number.
        ...     '''
        ...     return a + b
        >>> adder = Tool.from_function(add)
        >>> adder.to_param()["function"]["description"]
        'Add two numbers.'
        >>> adder.parameters["properties"]["a"]
        {'description': 'The first number.', 'type': 'integer'}
        >>> adder.validate('{"a": "2"}')
        {'a': 2, 'b': 1}

    Args:
        name: The name the model calls it by (letters, digits, ``_`` and ``-``).
        description: What it does and when to use it, for the model.
        parameters: The JSON schema of its arguments (an ``"object"`` schema).
        function: The function to call with the validated arguments as keywords; sync
            functions run in a thread, async ones on an event loop.
        timeout: Seconds one call may take before it becomes an error result; None to
            use the run's ``tool_timeout``.

    Raises:
        ToolDefinitionError: For a bad name, a function that is not callable or a
            signature pydantic cannot model.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    timeout: float | None = None
    _model: type[pydantic.BaseModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise ToolDefinitionError(f"tool {self.name!r}: {self.function!r} is not callable")
        if not _NAME.match(self.name):
            raise ToolDefinitionError(
                f"tool name {self.name!r}: use 1 to 64 letters, digits, '_' or '-', "
                "starting with a letter or '_'"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise ToolDefinitionError(f"tool {self.name!r}: timeout must be positive")
        _, described = _docstring_parts(inspect.getdoc(self.function))
        object.__setattr__(self, "_model", _arguments_model(self.name, self.function, described))

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """Describe a function as a tool, from its name, docstring and type hints.

        Args:
            function: A sync or async function whose parameters are passed by keyword.
            name: The tool's name; defaults to the function's ``__name__``.
            description: Defaults to the docstring's summary (the text before ``Args:``).
            timeout: As for :class:`Tool`.

        Returns:
            The tool, its ``parameters`` the JSON schema pydantic builds from the hints.

        Raises:
            ToolDefinitionError: If the function cannot be described (see :class:`Tool`).
        """
        tool_name: str = name or str(getattr(function, "__name__", ""))
        summary, described = _docstring_parts(inspect.getdoc(function))
        model = _arguments_model(tool_name or "tool", function, described)
        try:
            schema = _strip_titles(model.model_json_schema())
        except pydantic.PydanticInvalidForJsonSchema as error:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: its parameters have no JSON schema ({error})"
            ) from error
        return cls(
            name=tool_name,
            description=description if description is not None else summary,
            parameters=schema,
            function=function,
            timeout=timeout,
        )

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function (it then runs on an event loop)."""
        return _is_async(self.function)

    def to_param(self) -> dict[str, Any]:
        """The tool as an item of the request's ``tools`` list (Cohere V2 shape)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: str) -> dict[str, Any]:
        """Parse a call's raw JSON arguments and validate them against the signature.

        Args:
            arguments: The call's arguments as JSON text; ``""`` means no arguments.

        Returns:
            The keyword arguments for the function, converted to its hints' types.

        Raises:
            ToolError: With a message for the model, when the text is not a JSON object
                or does not fit the signature.
        """
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except ValueError as error:
            raise ToolError(f"the arguments are not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise ToolError("the arguments must be a JSON object")
        try:
            model = self._model.model_validate(value)
        except pydantic.ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself (no validation): a decorated function stays usable."""
        return self.function(*args, **kwargs)


@typing.overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@typing.overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorate a function as a :class:`Tool`: ``@tool`` or ``@tool(timeout=5)``.

    Example:
        >>> @tool
        ... def shout(text: str) -> str:
        ...     '''Upper-case a text.'''
        ...     return text.upper()
        >>> shout.name, shout("hi")
        ('shout', 'HI')

    Args:
        function: The function (when used bare, as ``@tool``).
        name: As for :meth:`Tool.from_function`.
        description: As for :meth:`Tool.from_function`.
        timeout: As for :meth:`Tool.from_function`.

    Returns:
        The tool, or a decorator that makes one.
    """
    if function is not None:
        return Tool.from_function(function, name=name, description=description, timeout=timeout)

    def decorate(fn: Callable[..., Any]) -> Tool:
        return Tool.from_function(fn, name=name, description=description, timeout=timeout)

    return decorate


def as_tools(tools: Iterable[Tool | Callable[..., Any]]) -> dict[str, Tool]:
    """Turn functions into tools (tools stay as they are), keyed by name.

    Raises:
        ToolDefinitionError: For two tools with one name, or one that cannot be described.
    """
    by_name: dict[str, Tool] = {}
    for item in tools:
        made = item if isinstance(item, Tool) else Tool.from_function(item)
        if made.name in by_name:
            raise ToolDefinitionError(f"two tools are named {made.name!r}")
        by_name[made.name] = made
    return by_name


def jsonable_result(value: Any) -> Any:
    """A tool's return value as plain JSON data (pydantic models, dataclasses, ...).

    Raises:
        ToolError: If the value has no JSON form.
    """
    try:
        return pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError as error:
        raise ToolError(
            f"the tool returned a {type(value).__name__}, which is not JSON ({error})"
        ) from None


def tool_message(tool_call_id: str, result: Any, error: str | None) -> dict[str, Any]:
    """The Cohere V2 ``tool`` message that answers one call with its result or error.

    The result goes in a ``document`` content part (the shape Cohere's tool-use guide
    uses, so the model can cite it): an object result as the document's ``data``, any
    other value as ``{"result": value}``, an error as ``{"error": message}``.

    Example:
        >>> tool_message("c1", {"temp": 21}, None)["content"]
        [{'type': 'document', 'document': {'data': {'temp': 21}}}]
        >>> tool_message("c1", None, "ValueError: no such city")["content"][0]["document"]
        {'data': {'error': 'ValueError: no such city'}}
    """
    if error is not None:
        data: dict[str, Any] = {"error": error}
    elif isinstance(result, dict):
        data = result
    else:
        data = {"result": result}
    return {
        "role": "tool",
        "tool_call_id": tool_call_id,
        "content": [{"type": "document", "document": {"data": data}}],
    }
