"""The syntax of what users type about a target: URLs, header fields, method tokens, tags.
A leaf: it imports nothing of fastload but its errors."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastload.errors import UsageError

TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: methods, field names
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-\.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str  # "http" | "https"
    host: str  # as written, without brackets
    port: int
    path: str  # path + query, never empty
    authority: str  # host[:port] as sent in Host / :authority
    host_is_ip: bool = False  # an IP address: no SNI, and the certificate is checked for the address

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def parse_target(url: str) -> Target:
    if not url or any(c.isspace() for c in url):
        raise UsageError(f"URL {url!r}: must be a non-empty URL without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"URL {url!r}: scheme must be http:// or https://, not {parts.scheme!r}://"
                         if scheme else f"URL {url!r}: missing scheme (http:// or https://)")
    host = parts.hostname or ""
    if not host:
        raise UsageError(f"URL {url!r}: missing host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
        if not _HOST_RE.match(host) or len(host) > 253:
            raise UsageError(f"URL {url!r}: invalid host {host!r}") from None
    if port == 0:
        raise UsageError(f"URL {url!r}: port must be 1-65535")
    default_port = 443 if scheme == "https" else 80
    port = port or default_port
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    shown = f"[{host}]" if ip is not None and ip.version == 6 else host
    authority = shown if port == default_port else f"{shown}:{port}"
    return Target(url=url, scheme=scheme, host=host, port=port, path=path, authority=authority,
                  host_is_ip=ip is not None)


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"header {text!r}: expected 'Name: value'")
    if not TOKEN_RE.match(name):
        raise UsageError(f"header {text!r}: invalid header name {name!r}")
    value = value.strip()
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"header {text!r}: value contains CR, LF or NUL")
    return name, value


def parse_tags(tags: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"--tag {t!r}: expected KEY=VALUE")
        out.append((k.strip(), v.strip()))
    return tuple(out)
