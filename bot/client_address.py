"""The client address that limits and logs count: the peer, or whom a trusted proxy forwarded."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from bot.keys import SETTINGS
from bot.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request: web.Request) -> str | None:
    """`request.remote`, unless the peer is one of KLUBB_TRUSTED_PROXIES: then the right-most
    address in X-Forwarded-For that is not itself a trusted proxy.

    Right to left because each proxy appends the address it was called from: the entries left
    of the last one a trusted proxy wrote are whatever the client sent, so a client can't choose
    its address. Malformed entries ("unknown", a name) are skipped; when every entry is a trusted
    proxy, the left-most is the client; with no entry at all, the peer is."""
    peer = request.remote
    settings = request.config_dict.get(SETTINGS)
    proxies = settings.trusted_proxies if settings is not None else ()
    if not proxies or peer is None:
        return peer
    address = parsed(peer)
    if address is None or not _within(address, proxies):
        # Never X-Forwarded-For from a peer that is not a trusted proxy: anyone can send it.
        return peer
    client: Address | None = None
    for entry in reversed(_forwarded(request)):
        hop = parsed(entry)
        if hop is None:
            continue
        client = hop
        if not _within(hop, proxies):
            break
    return str(client) if client is not None else peer


def parsed(text: str) -> Address | None:
    """An address as X-Forwarded-For or the socket gives it, None when it is not one."""
    text = text.strip()
    # "[2001:db8::1]:443" and "192.0.2.1:443": some proxies append the client's port.
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client of a dual-stack socket shows as ::ffff:192.0.2.1: one client, one address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded(request: web.Request) -> list[str]:
    """Every X-Forwarded-For entry in order; several such headers read as one list (RFC 7230)."""
    return [
        entry
        for header in request.headers.getall("X-Forwarded-For", [])
        for entry in header.split(",")
    ]


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)
