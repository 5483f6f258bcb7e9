"""Which proxy the environment configures for a URL, by httpx's rules (``trust_env``).

``HTTP_PROXY``, ``HTTPS_PROXY`` and ``ALL_PROXY`` (any case) name the proxy for a scheme;
``NO_PROXY`` exempts hosts: ``*`` exempts all, an IP address or ``localhost`` exempts that
host, a ``scheme://host`` entry exempts that origin, and a domain exempts itself and its
subdomains (``.example.com``: only its subdomains). A transport that cannot use a proxy
asks this first, so that it never connects around one.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.request
from collections.abc import Mapping

import httpx

__all__ = ["proxy_for"]


def proxy_for(url: httpx.URL, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL the environment configures for ``url``, or None.

    Args:
        url: The request's URL.
        environ: The environment to read (defaults to ``os.environ``, through
            ``urllib.request.getproxies``, as httpx reads it).
    """
    if environ is None:
        found = urllib.request.getproxies()
    else:
        found = _from_mapping(environ)
    proxy = found.get(url.scheme) or found.get("all")
    if not proxy:
        return None
    for entry in (item.strip() for item in found.get("no", "").split(",")):
        if entry == "*":
            return None
        if entry and _exempts(entry, url):
            return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _from_mapping(environ: Mapping[str, str]) -> dict[str, str]:
    # urllib.request.getproxies_environment's rules: NAME_proxy in any case, lower case wins.
    found: dict[str, str] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            found.setdefault(name[:-6].lower(), value)
    for name, value in environ.items():
        if value and name.endswith("_proxy"):
            found[name[:-6].lower()] = value
    return found


def _exempts(entry: str, url: httpx.URL) -> bool:
    """Whether one ``NO_PROXY`` entry applies to ``url`` (httpx's ``URLPattern`` rules)."""
    if "://" in entry:
        pattern = entry
    elif _is_ip(entry, 4):
        pattern = f"all://{entry}"
    elif _is_ip(entry, 6):
        pattern = f"all://[{entry}]"
    elif entry.lower() == "localhost":
        pattern = f"all://{entry}"
    else:
        pattern = f"all://*{entry}"
    try:
        parsed = httpx.URL(pattern)
    except httpx.InvalidURL:
        return False
    if parsed.scheme != "all" and parsed.scheme != url.scheme:
        return False
    if parsed.port is not None and parsed.port != url.port:
        return False
    host = parsed.host
    if not host or host == "*":
        return True
    if host.startswith("*."):
        regex = f"^.+\\.{re.escape(host[2:])}$"
    elif host.startswith("*"):
        regex = f"^(.+\\.)?{re.escape(host[1:])}$"
    else:
        regex = f"^{re.escape(host)}$"
    return re.match(regex, url.host) is not None


def _is_ip(text: str, version: int) -> bool:
    try:
        address = ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        return False
    return address.version == version
