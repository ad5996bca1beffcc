"""The address the app tells the user at start: one a browser can open, for the host it serves on."""
from __future__ import annotations

import ipaddress
import socket

from .security import encode_token

# documentation addresses (RFC 5737, RFC 3849): "connecting" a UDP socket to one sends nothing, it only
# asks the kernel which local address would carry traffic out, which is what another machine reaches
_PROBE_V4 = '192.0.2.1'
_PROBE_V6 = '2001:db8::1'


def reachable_address(ipv6: bool = False) -> str | None:
    """This machine's address on the network (the one its default route leaves by), or None offline."""
    family, probe = (socket.AF_INET6, _PROBE_V6) if ipv6 else (socket.AF_INET, _PROBE_V4)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            address = sock.getsockname()[0]
    except OSError:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    return None if parsed.is_unspecified or parsed.is_loopback else address


def display_host(host: str) -> str:
    """The host as an address bar takes it.

    A wildcard bind (0.0.0.0, ::) is reached from other machines by this machine's network address, so
    that is what is shown (loopback only when the machine has no network); IPv6 goes in brackets."""
    if host in ('0.0.0.0', ''):
        return reachable_address() or '127.0.0.1'
    if host == '::':
        address = reachable_address(ipv6=True) or reachable_address()
        if address is None:
            return '[::1]'
        host = address
    return f'[{host}]' if ':' in host and not host.startswith('[') else host


def app_url(host: str, port: int, token: str | None = None) -> str:
    """The address to open; with a token in it (percent-encoded, so that it pastes as one piece)."""
    url = f'http://{display_host(host)}:{port}/'
    return f'{url}?token={encode_token(token)}' if token else url


def address_line(host: str, port: int, token: str | None = None) -> str:
    """The one line printed at start, in every mode."""
    return f'jarvis: J.A.R.V.I.S. is at {app_url(host, port, token)}'


def insecure_warning(host: str, port: int) -> str:
    return (f'jarvis: warning: --insecure: serving on {host}:{port} with no token, so anyone who can reach this '
            f'machine can read its data and use the app; start with --token instead.')
