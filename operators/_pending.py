"""What a buffering operator held when its upstream failed: it rides on the error.

An operator that buffers (sentences, tool-call fragments, ...) must not lose what it holds
when the stream fails, yet must not emit a half-built item as if it were whole. So it
attaches the buffered items to the exception before passing the exception on, and the
caller reads them back with :func:`pending`. The exception itself is passed on unchanged:
same object, same type.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attach_pending", "pending"]

_ATTRIBUTE = "__streamkit_pending__"


def attach_pending(error: BaseException, items: Any) -> BaseException:
    """Record ``items`` (one operator's buffered output) on ``error`` and return ``error``.

    Several operators in one pipeline each add their own entry, outermost last. Nothing is
    recorded when ``items`` is empty.
    """
    if items in (None, "", [], ()):
        return error
    held: list[Any] = list(getattr(error, _ATTRIBUTE, ()))
    held.append(items)
    try:
        setattr(error, _ATTRIBUTE, tuple(held))
    except AttributeError:  # an exception type with __slots__: nothing can be attached
        pass
    return error


def pending(error: BaseException) -> tuple[Any, ...]:
    """Return what buffering operators held when ``error`` passed through them.

    Example:
        >>> error = attach_pending(ValueError("boom"), "Half a sent")
        >>> pending(error)
        ('Half a sent',)
        >>> pending(ValueError("no operator saw this one"))
        ()
    """
    return tuple(getattr(error, _ATTRIBUTE, ()))
