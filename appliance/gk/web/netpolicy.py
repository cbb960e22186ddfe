"""Who counts as "on the LAN" for the wizard and owner recovery: ``http.lan_networks``.

The client address is the socket's peer (``REMOTE_ADDR``); no forwarded header is trusted,
so a request relayed from the internet by a port forward still shows the router's public
peer address only if the router NATs it — which is why the list is a config knob the owner
can narrow (tests narrow it to prove that a non-LAN peer is refused).
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: list[str]) -> list[Network]:
    return [ipaddress.ip_network(s, strict=False) for s in specs]


def is_lan(ip: str, networks: list[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in networks)
