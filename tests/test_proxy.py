"""Which proxy applies to a URL: streamkit's rules against httpx's own, case by case."""

from __future__ import annotations

import os

import httpx
import pytest
from httpx._utils import URLPattern, get_environment_proxies

from streamkit._proxy import proxy_for

ENVIRONMENTS = [
    {},
    {"HTTP_PROXY": "http://proxy:3128"},
    {"HTTPS_PROXY": "proxy:3128"},
    {"ALL_PROXY": "socks5://proxy:1080"},
    {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:2"},
    {"HTTP_PROXY": "http://p:1", "NO_PROXY": "*"},
    {"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "http://p:2", "NO_PROXY": "127.0.0.1"},
    {"ALL_PROXY": "http://p:1", "NO_PROXY": "localhost, example.com"},
    {"ALL_PROXY": "http://p:1", "NO_PROXY": ".example.com"},
    {"ALL_PROXY": "http://p:1", "NO_PROXY": "::1"},
    {"ALL_PROXY": "http://p:1", "NO_PROXY": "http://api.cohere.com"},
    {"ALL_PROXY": "http://p:1", "NO_PROXY": "api.cohere.com:8443"},
    {"HTTPS_PROXY": "http://p:2", "ALL_PROXY": "http://p:1", "NO_PROXY": "10.0.0.1/8"},
]
URLS = [
    "http://127.0.0.1:8000/v2/chat",
    "https://api.cohere.com/v2/chat",
    "https://api.cohere.com:8443/v2/chat",
    "http://localhost/v2/chat",
    "https://example.com/v2/chat",
    "https://www.example.com/v2/chat",
    "https://notexample.com/v2/chat",
    "http://[::1]:9/v2/chat",
    "http://10.0.0.1/v2/chat",
]


def httpx_proxy(url: httpx.URL) -> str | None:
    """The proxy httpx's trust_env rules pick for ``url`` (its private helpers)."""
    mounts = sorted(
        ((URLPattern(key), value) for key, value in get_environment_proxies().items()),
        key=lambda item: item[0],
    )
    for pattern, proxy in mounts:
        if pattern.matches(url):
            return proxy
    return None


@pytest.mark.parametrize("environ", ENVIRONMENTS, ids=lambda env: ",".join(env) or "none")
def test_the_proxy_is_the_one_httpx_would_use(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    for raw in URLS:
        url = httpx.URL(raw)
        assert proxy_for(url) == httpx_proxy(url), raw
        assert proxy_for(url, environ) == httpx_proxy(url), raw
