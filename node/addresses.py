"""Where a node listens, where peers reach it, and what its seeds resolve to.

A node binds one address (``--host``/``--port``) and advertises another to peers
(``--advertise``; default: the bound one). Binding every interface (``0.0.0.0`` or ``::``) is
fine, but advertising it is not: a peer would dial its own machine. So, as memberlist picks a
private address when bound to all interfaces, the node then advertises the local address of
the route towards its first seed (a UDP ``connect`` sends no packet; the kernel only picks the
source address), or of the host's name, and refuses to guess when neither gives one.

Seeds are ``host:port`` with a DNS name, IPv4 or bracketed IPv6; ``resolve_seed`` looks a
name up afresh each time it is called (membership calls it on every join attempt), so a seed
that did not resolve yet, or moved, is found without restarting the node.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence

from gossip.errors import TransportError
from gossip.http_transport import format_address, parse_address
from node.errors import ConfigError

__all__ = ["advertised_address", "is_unspecified", "resolve_seed", "startup_line"]

log = logging.getLogger(__name__)


def is_unspecified(host: str) -> bool:
    """``0.0.0.0``, ``::`` or empty: bound to every interface, not an address a peer can dial."""
    if host == "":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


async def resolve_seed(seed: str) -> list[str]:
    """The ``host:port`` addresses ``seed`` resolves to now; ``TransportError`` if it cannot."""
    host, port = parse_address(seed)
    try:
        ipaddress.ip_address(host)
        return [format_address(host, port)]  # a literal address: nothing to look up
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from exc
    found = list(dict.fromkeys(format_address(str(info[4][0]), port) for info in infos))
    log.debug("seed %s resolves to %s", seed, ", ".join(found))
    return found


def advertised_address(host: str, port: int, advertise: str | None, seeds: Sequence[str]) -> str:
    """The address peers should use: ``advertise``, the bound one, or (bound to every interface)
    the local end of the route to the first seed, or the host name's address; ``ConfigError``
    when a wildcard bind leaves nothing to advertise."""
    if advertise is not None:
        return advertise
    if not is_unspecified(host):
        return format_address(host, port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in (*(_route_source(seed, family) for seed in seeds[:1]), _host_name_address(family)):
        if candidate is not None:
            log.info("bound to every interface (%s): advertising %s to peers; set --advertise to choose", host,
                     format_address(candidate, port))  # fmt: skip
            return format_address(candidate, port)
    raise ConfigError(
        f"--host {host} binds every interface, but no address to advertise was found (no route to a seed, "
        "and the host name resolves to loopback only): pass --advertise HOST:PORT"
    )


def _route_source(seed: str, family: socket.AddressFamily) -> str | None:
    """The local address the kernel would send from towards ``seed``, or None."""
    try:
        host, port = parse_address(seed)
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(infos[0][4])  # UDP: no packet leaves; the kernel picks a route and source
            source = str(probe.getsockname()[0])
    except (OSError, TransportError, IndexError, UnicodeError):
        return None
    return None if is_unspecified(source) else source


def _host_name_address(family: socket.AddressFamily) -> str | None:
    """A non-loopback address the host's own name resolves to, or None."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not (address.is_loopback or address.is_unspecified or address.is_link_local):
            return str(address)
    return None


def startup_line(*, name: str, cluster: str, bind: str, advertise: str, web_url: str, web_separate: bool,
                 seeds: Sequence[str]) -> str:  # fmt: skip
    """One line with every address a node uses, for its log: what an operator checks first."""
    web = f"page and API at {web_url} ({'own listener' if web_separate else 'on the gossip port'})"
    joining = f"seeds {', '.join(seeds)}" if seeds else "no seeds (a new cluster)"
    return f"node {name} in cluster {cluster}: gossip bound to {bind}, advertised as {advertise}; {web}; {joining}"
