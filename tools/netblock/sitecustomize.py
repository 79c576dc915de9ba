"""Blocks outgoing network connections in every Python process of the test run.

The test command puts this folder on PYTHONPATH and sets CNN_BLOCK_NETWORK=1, so the pytest
process and every notebook kernel it starts refuse to resolve or connect to anything but this
machine (Jupyter kernels talk over loopback ZeroMQ, which stays allowed). A download attempted
by mistake fails at once with NetworkBlockedError instead of hanging or silently succeeding.
"""

import os

if os.environ.get("CNN_BLOCK_NETWORK") == "1":
    import ipaddress
    import socket

    class NetworkBlockedError(ConnectionError):
        """Raised for any connection to a host outside this machine during the test run."""

    def _is_local(host) -> bool:
        if host in (None, "", "localhost", "localhost.localdomain"):
            return True
        if isinstance(host, bytes):
            host = host.decode()
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _guard(address) -> None:
        if isinstance(address, tuple) and not _is_local(address[0]):
            raise NetworkBlockedError(f"network access to {address[0]!r} is blocked during the test run (CNN_BLOCK_NETWORK=1)")

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        _guard(address)
        return _connect(self, address)

    def connect_ex(self, address):
        _guard(address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        _guard((host,))
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
    socket.NetworkBlockedError = NetworkBlockedError
