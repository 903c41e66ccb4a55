"""Sign-in by an authenticating proxy (oauth2-proxy, or any that sets the same headers).

oauth2-proxy passes the signed-in user upstream as `X-Forwarded-User` / `X-Forwarded-Email`
(`--pass-user-headers`) or, in front of an ingress (`--set-xauthrequest`), as
`X-Auth-Request-User` / `-Email` / `-Preferred-Username`. Anyone can send those headers, so they
count only when the request's peer, the TCP connection's other end, is one of the configured
proxy addresses; from any other peer they are ignored and the request is anonymous.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network

# Most specific first: a preferred user name reads better as who acted than an opaque id.
USER_HEADERS = (
    "X-Auth-Request-Preferred-Username",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-User",
    "X-Auth-Request-User",
)
EMAIL_HEADERS = ("X-Forwarded-Email", "X-Auth-Request-Email")
# A user name or e-mail as a proxy passes it: no control characters, a sane length.
_IDENTITY = re.compile(r"^[^\x00-\x1f\x7f]{1,254}$")


@dataclass(frozen=True)
class ProxyIdentity:
    user: str
    email: str | None


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, peer: str | None) -> bool:
        address = _address(peer)
        return address is not None and any(address in network for network in self.networks)

    def identity(self, peer: str | None, headers: Mapping[str, str]) -> ProxyIdentity | None:
        """The user the proxy signed in, if the peer is a trusted proxy and says who."""
        if not self.trusts(peer):
            return None
        email = _first(headers, EMAIL_HEADERS)
        user = _first(headers, USER_HEADERS) or email
        if user is None:
            return None
        return ProxyIdentity(user, email)

    def client_address(self, peer: str | None, headers: Mapping[str, str]) -> str:
        """The client's address for the sign-in limit: behind a trusted proxy, the last address
        of `X-Forwarded-For` that is not one of the proxies (the ones before it the client
        could have written itself); else the peer."""
        if self.trusts(peer):
            hops = [hop.strip() for hop in headers.get("X-Forwarded-For", "").split(",")]
            for hop in reversed(hops):
                if _address(hop) is not None and not self.trusts(hop):
                    return str(_address(hop))
        return peer or "unknown"


def _first(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = headers.get(name, "").strip()
        if value and _IDENTITY.match(value):
            return value
    return None


def _address(text: str | None) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address((text or "").strip("[]"))
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
