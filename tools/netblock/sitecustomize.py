"""Blocks outgoing network traffic in every Python process of the test run.

The test command puts this folder on PYTHONPATH and sets CNN_BLOCK_NETWORK=1, so the pytest
process and every notebook kernel it starts refuse to talk to anything but this machine (Jupyter
kernels talk over loopback ZeroMQ, which stays allowed). A download attempted by mistake fails at
once with NetworkBlockedError instead of hanging or silently succeeding.

Covered, in every Python process that starts with this folder on its path: name lookups
(``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``, ``getnameinfo``) and
connections or datagrams (``connect``, ``connect_ex``, ``sendto``, ``sendmsg``) of Python sockets —
which is what urllib, http.client, requests, torch.hub, pip, asyncio and ``socket.create_connection``
use. Not covered (the README says so): programs that are not Python (``curl``, ``wget``, ``git``),
Python started with ``-I``/``-S`` or without this PYTHONPATH, and C libraries that open their own
sockets (libcurl, gRPC, ZeroMQ to a remote host).
"""

import os

if os.environ.get("CNN_BLOCK_NETWORK") == "1":
    import ipaddress
    import socket

    class NetworkBlockedError(ConnectionError):
        """Raised for any connection to, or lookup of, a host outside this machine during the test run."""

    _HOSTNAME = socket.gethostname()  # this machine's own name (jupyter_client looks it up)

    def _is_local(host) -> bool:
        if host in (None, "", "localhost", "localhost.localdomain", b"localhost", _HOSTNAME):
            return True
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _guard(address) -> None:
        """Refuse a non-local (host, port, ...) address; other address kinds (Unix sockets) are local."""
        if isinstance(address, tuple) and address and not _is_local(address[0]):
            raise NetworkBlockedError(f"network access to {address[0]!r} is blocked during the test run (CNN_BLOCK_NETWORK=1)")

    _socket = socket.socket
    _connect, _connect_ex, _sendto, _sendmsg = _socket.connect, _socket.connect_ex, _socket.sendto, _socket.sendmsg

    def connect(self, address):
        _guard(address)
        return _connect(self, address)

    def connect_ex(self, address):
        _guard(address)
        return _connect_ex(self, address)

    def sendto(self, data, flags_or_address, *address):
        _guard(address[0] if address else flags_or_address)  # sendto(data, address) or sendto(data, flags, address)
        return _sendto(self, data, flags_or_address, *address)

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        if address is not None:
            _guard(address)
            return _sendmsg(self, buffers, ancdata, flags, address)
        return _sendmsg(self, buffers, ancdata, flags)

    _socket.connect, _socket.connect_ex, _socket.sendto, _socket.sendmsg = connect, connect_ex, sendto, sendmsg

    def _guard_lookup(function, host_position=0):
        def guarded(*args, **kwargs):
            host = args[host_position] if len(args) > host_position else kwargs.get("host")
            if function.__name__ == "getnameinfo":
                host = host[0] if isinstance(host, tuple) and host else host
            _guard((host,))
            return function(*args, **kwargs)
        guarded.__name__, guarded.__doc__ = function.__name__, function.__doc__
        return guarded

    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        setattr(socket, _name, _guard_lookup(getattr(socket, _name)))
    socket.NetworkBlockedError = NetworkBlockedError
