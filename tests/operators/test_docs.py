"""Every public name of ``operators`` is documented; every operator the way STYLE.md asks.

An operator is a function whose return annotation is ``Callable[[Observable[A]],
Observable[B]]``. Its docstring must have a one-line summary, a ``Marble::`` block whose
diagrams use only the legend of ``operators/__init__.py``, an ``Example:`` with ``>>>``
lines (pytest runs them with ``--doctest-modules``), and a ``Returns:`` section.
"""

from __future__ import annotations

import collections.abc
import doctest
import inspect
import re
import typing
from typing import Any

import pytest
from reactivex import Observable

import operators
from tests.operators.matrix import docstring_marbles, events

NAMES = list(operators.__all__)


def is_operator(obj: Any) -> bool:
    if not inspect.isfunction(obj):
        return False
    returned = typing.get_type_hints(obj).get("return")
    if typing.get_origin(returned) is not collections.abc.Callable:
        return False
    arguments, result = typing.get_args(returned)
    if not isinstance(arguments, list) or len(arguments) != 1:
        return False
    origins: list[object] = [typing.get_origin(arguments[0]), typing.get_origin(result)]
    return origins == [Observable, Observable]


OPERATORS = [name for name in NAMES if is_operator(getattr(operators, name))]
# The legend: - tick, letters items, | completed, # error, ^ subscription, (ab) one tick.
MARBLE = re.compile(r"[-a-zA-Z0-9|#^()]+")


def test_all_is_sorted_and_exported() -> None:
    assert sorted(NAMES) == NAMES
    assert len(set(NAMES)) == len(NAMES)
    for name in NAMES:
        assert hasattr(operators, name), name


def test_the_text_operators_are_found_as_operators() -> None:
    expected = {
        "accumulate_text",
        "buffer_lines",
        "buffer_sentences",
        "buffer_words",
        "idle_flush",
        "rechunk",
        "smooth",
        "text_only",
        "thinking_only",
    }
    assert expected <= set(OPERATORS)
    assert "pending" not in OPERATORS


@pytest.mark.parametrize("name", NAMES)
def test_every_public_name_has_its_own_docstring(name: str) -> None:
    obj = getattr(operators, name)
    doc = obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"
    # A dataclass without a docstring gets its signature as one: that is not documentation.
    assert not doc.startswith(f"{name}("), f"{name} has only a generated docstring"
    summary = inspect.cleandoc(doc).splitlines()[0]
    assert summary.endswith("."), f"{name}: the summary line should be a sentence"


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_has_a_marble_diagram(name: str) -> None:
    operator = getattr(operators, name)
    source, output = docstring_marbles(operator)
    for marble in (source, output):
        assert MARBLE.fullmatch(marble), f"{name}: {marble!r} is not in the legend's alphabet"
    assert [kind for _, kind, _ in events(source)][-1:] in (["C"], ["E"]), (
        f"{name}: the source diagram should end in | or #"
    )
    lines = inspect.cleandoc(operator.__doc__).splitlines()
    block = next(index for index, line in enumerate(lines) if line.startswith("Marble"))
    call = lines[block + 3].strip()
    assert call.startswith(f"{name}("), f"{name}: the diagram's middle line should call it"


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_has_a_runnable_example(name: str) -> None:
    operator = getattr(operators, name)
    doc = inspect.cleandoc(operator.__doc__)
    assert "\nExample:\n" in doc or "\nExamples:\n" in doc, f"{name} has no Example: section"
    tests = doctest.DocTestFinder().find(operator, name, globs={})
    assert sum(len(test.examples) for test in tests) >= 2, f"{name}: no >>> lines"
    assert "\nReturns:\n" in doc, f"{name} has no Returns: section"


def test_the_legend_is_in_the_facade() -> None:
    doc = operators.__doc__ or ""
    assert "Marble legend" in doc
    for symbol in ("-", "|", "#", "^", "(ab)"):
        assert symbol in doc
