"""Keep the credentials of requests in flight out of httpx's and httpcore's log records.

At DEBUG, httpcore logs every response's headers, raw: a server that echoes the key in a
header would put it in the log. While a request is in flight its credentials are held
here, and a filter on httpx's and httpcore's loggers replaces them with ``***`` in any
record before a handler sees it. Filters run only for records a logger emits, so this
costs nothing unless those loggers are enabled.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Collection

__all__ = ["hold_secrets"]

# Logger filters are not inherited by child loggers: every logger that emits is named.
_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)

_lock = threading.Lock()
_held: collections.Counter[str] = collections.Counter()
_installed = False


class _MaskSecrets(logging.Filter):
    """Rewrites a record whose text holds a secret in flight; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = sorted(_held, key=len, reverse=True)
        if not secrets:
            return True
        text = record.getMessage()
        if any(secret in text for secret in secrets):
            for secret in secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, ()
        return True


def hold_secrets(secrets: Collection[str]) -> Callable[[], None]:
    """Mask ``secrets`` in httpx's and httpcore's logs until the returned callable is called."""
    global _installed
    wanted = [secret for secret in secrets if secret]
    with _lock:
        if not _installed:
            mask = _MaskSecrets()
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(mask)
            _installed = True
        _held.update(wanted)
    released = False

    def release() -> None:
        nonlocal released
        with _lock:
            if not released:
                released = True
                _held.subtract(wanted)
                for secret in wanted:
                    if _held[secret] <= 0:
                        del _held[secret]

    return release
