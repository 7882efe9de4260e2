"""Following ``Set-Cookie`` values within one request, so an operation after a login (or an
update that created a session) names the session the browser will have."""

from __future__ import annotations

from collections.abc import Iterable


def parse_cookie_header(header: str) -> dict[str, str]:
    """The ``name=value`` pairs of a ``Cookie`` header, in order (the last of a name wins)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out[name] = value
    return out


def set_cookie_name_value(set_cookie: str) -> tuple[str, str, bool]:
    """The name and value of a ``Set-Cookie`` value, and whether it removes the cookie."""
    first, *attributes = set_cookie.split(";")
    name, _, value = first.strip().partition("=")
    removal = any(a.strip().lower() == "max-age=0" for a in attributes) or value == ""
    return name, value, removal


def apply(header: str, set_cookies: Iterable[str]) -> str:
    """The ``Cookie`` header the browser sends after it applies ``set_cookies``."""
    jar = parse_cookie_header(header)
    for sc in set_cookies:
        name, value, removal = set_cookie_name_value(sc)
        if removal:
            jar.pop(name, None)
        else:
            jar[name] = value
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def merge(earlier: list[str], later: Iterable[str]) -> list[str]:
    """One ``Set-Cookie`` per name (RFC 6265bis §4.1.1): a later value replaces an earlier one."""
    out = list(earlier)
    for sc in later:
        name = set_cookie_name_value(sc)[0]
        out = [c for c in out if set_cookie_name_value(c)[0] != name]
        out.append(sc)
    return out
