"""Outbound-address guard: check a user-supplied URL before the server connects to it.

A webhook (or input-image) URL is chosen by the caller, so without a guard it can point the server at
its own loopback, the private network or the cloud metadata service (SSRF). ``resolve_target`` parses
the URL, resolves its host once and refuses it unless every address is public; callers then connect to
``Target.addresses`` rather than resolving again, so a second DNS answer (rebinding) cannot slip past.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from plantain.errors import ConfigurationError, InvalidRequestError

__all__ = ["BlockedURLError", "Target", "resolve_target"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": 80, "https": 443}
_ALLOW_SETTING = "PLANTAIN_ALLOWED_HOSTS"
_REFUSED = (
    "outbound requests to loopback, private, link-local and metadata addresses are refused "
    f"(allow-list it with {_ALLOW_SETTING} to permit it)"
)
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedURLError(InvalidRequestError):
    """A URL the server will not connect to: wrong scheme, no host, unresolvable or non-public."""

    code = "url_blocked"


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to one of ``addresses`` (already vetted), sending ``host`` as the name."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def resolve_target(url: str, *, field: str, allow: Sequence[str] = ()) -> Target:
    """Parse ``url``, resolve its host once and refuse it unless every address is public or allowed.

    ``allow`` holds exact hosts (``"localhost"``), ``host:port`` pairs and CIDR networks
    (``"10.0.0.0/8"``). Resolution blocks, so async callers should run this in a worker thread.
    """
    parts = _split(url, field)
    scheme, host, port = _scheme(parts, url, field), _host(parts, url, field), _port(parts, url, field)
    rules = _AllowList.parse(allow)
    addresses = _resolve(host, port, url, field)
    if not rules.allows_host(host, port):
        for address in addresses:
            _check(address, rules, url, field)
    return Target(scheme=scheme, host=host, port=port, addresses=addresses)


# URL parsing


def _split(url: str, field: str) -> SplitResult:
    """Split ``url``, refusing characters that other URL parsers read differently (a parser mismatch
    would let the checked host differ from the one finally connected to)."""
    if any(char == "\\" or char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise BlockedURLError(
            f"{field}: {_shown(url)} contains a backslash, whitespace or control character; "
            "percent-encode it",
            field=field,
        )
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise BlockedURLError(f"{field}: {_shown(url)} is not a valid URL ({exc})", field=field) from exc


def _scheme(parts: SplitResult, url: str, field: str) -> str:
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise BlockedURLError(
            f"{field}: {_shown(url)} has scheme {scheme or '(none)'!r}; only http and https URLs are allowed",
            field=field,
        )
    return scheme


def _host(parts: SplitResult, url: str, field: str) -> str:
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BlockedURLError(
            f"{field}: {_shown(url)} has no host; give an absolute URL such as https://example.com/hook",
            field=field,
        )
    return host


def _port(parts: SplitResult, url: str, field: str) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        raise BlockedURLError(f"{field}: {_shown(url)} has an invalid port ({exc})", field=field) from exc
    return port if port is not None else _SCHEMES[parts.scheme.lower()]


def _shown(url: str) -> str:
    """``url`` quoted for a message, without any ``user:password@`` part."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return repr(url)
    if "@" not in parts.netloc:
        return repr(url)
    return repr(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl())


# Resolution


def _resolve(host: str, port: int, url: str, field: str) -> tuple[str, ...]:
    """Every address ``host`` resolves to, in resolver order, asked for exactly once."""
    if host == "invalid" or host.endswith(".invalid"):
        raise _unresolvable(host, url, field, "names under .invalid never resolve, RFC 6761")
    numeric = _legacy_ipv4(host)
    query = str(numeric) if numeric is not None else host
    try:
        infos = socket.getaddrinfo(query, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _unresolvable(host, url, field, str(exc)) from exc
    addresses = _unique(str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6))
    if not addresses:
        raise _unresolvable(host, url, field, "no IPv4 or IPv6 address")
    return addresses


def _unresolvable(host: str, url: str, field: str, why: str) -> BlockedURLError:
    return BlockedURLError(
        f"{field}: {_shown(url)} names host {host!r}, which does not resolve ({why}); "
        "check the spelling and that this server can resolve it",
        field=field,
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` spells in the inet_aton forms browsers and libc accept
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``), or None; resolved as such on every platform."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(part) for part in parts):
        return None
    numbers = [_ipv4_part(part) for part in parts]
    *head, last = numbers
    if any(not 0 <= number <= 255 for number in head) or not 0 <= last < 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part, 16)
    return int(part, 8) if part.startswith("0") else int(part)


# Address policy


def _check(address: str, rules: _AllowList, url: str, field: str) -> None:
    ip = ipaddress.ip_address(address.partition("%")[0])
    reason = _refusal(ip)
    if reason is not None and not rules.allows_address(ip):
        raise BlockedURLError(f"{field}: {_shown(url)} resolves to {ip}, {reason}; {_REFUSED}", field=field)


_V4_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/32", "an unspecified address"),
    ("0.0.0.0/8", "a 'this network' address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "a cloud metadata address"),
    ("100.100.100.200/32", "a cloud metadata address"),
    ("169.254.0.0/16", "a link-local address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "a broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("192.0.0.0/24", "a special-purpose address"),
    ("192.0.2.0/24", "a documentation address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("198.18.0.0/15", "a benchmarking address"),
)
_V6_RANGES: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("fd00:ec2::254/128", "a cloud metadata address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("2001::/32", "a Teredo tunnel address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("fc00::/7", "a private (unique local) address"),
    ("ff00::/8", "a multicast address"),
    ("100::/64", "a discard-only address"),
    ("2001:db8::/32", "a documentation address"),
)
_RANGES: tuple[tuple[_IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in _V4_RANGES + _V6_RANGES
)


def _refusal(ip: _IPAddress) -> str | None:
    """Why ``ip`` is not a public address (e.g. ``"a loopback address"``), or None when it is."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        kind, inner = embedded
        why = _refusal(inner)
        return None if why is None else f"{kind} embedding {inner}, {why}"
    for network, why in _RANGES:
        if ip.version == network.version and ip in network:
            return why
    if isinstance(ip, ipaddress.IPv6Address) and ip in _IPV4_COMPATIBLE:
        return f"a deprecated IPv4-compatible address embedding {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a special-purpose, non-global address"
    return None


def _embedded_ipv4(ip: _IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 transition form routes to, with the form's name, or None."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped address", ip.ipv4_mapped
    if ip in _NAT64:
        return "a NAT64 address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4 address", ip.sixtofour
    return None


# Allow-list


@dataclass(frozen=True)
class _AllowList:
    """Parsed ``allow`` entries: hosts allowed on any port, ``(host, port)`` pairs, and networks."""

    hosts: frozenset[str]
    host_ports: frozenset[tuple[str, int]]
    networks: tuple[_IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> _AllowList:
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[_IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "/" in entry:
                networks.append(_network(entry))
                continue
            host, port = _host_port(entry)
            if port is None:
                hosts.add(_normal_host(host))
            else:
                host_ports.add((_normal_host(host), port))
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks))

    def allows_host(self, host: str, port: int) -> bool:
        name = _normal_host(host)
        return name in self.hosts or (name, port) in self.host_ports

    def allows_address(self, ip: _IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


def _network(entry: str) -> _IPNetwork:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError as exc:
        raise ConfigurationError(f"{_ALLOW_SETTING}: {entry!r} is not a valid CIDR network ({exc})") from exc


def _host_port(entry: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; a bare IPv6 literal has no port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ConfigurationError(f"{_ALLOW_SETTING}: {entry!r} is not host, host:port or a network")
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    else:
        host, port_text = entry, None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"{_ALLOW_SETTING}: {entry!r} has an invalid port {port_text!r}")
    return host, int(port_text)


def _normal_host(host: str) -> str:
    """``host`` lowercased without a trailing dot, with IP literals in one canonical spelling."""
    name = host.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        numeric = _legacy_ipv4(name)
        return str(numeric) if numeric is not None else name
