"""Who a request comes from, as one key per client: the unit that throttles and per-client limits count."""

import ipaddress


def client_key(ip: str) -> str:
    """The client key of a source address: an IPv4 address as is, an IPv6 address as its /64."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip.strip()  # not an address (a console test invoke): keyed as given
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    # One subscriber holds a whole /64 and picks any address in it: keying the address would let
    # one client be 2^64 clients.
    return str(ipaddress.IPv6Network((address, 64), strict=False))
