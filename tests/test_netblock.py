"""The network guard of the test run (tools/netblock/sitecustomize.py): every in-process way out is closed,
loopback stays open. conftest.py installs it in this process even when pytest is run directly."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REMOTE = ("93.184.216.34", 80)  # any address outside this machine


def _udp() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


@pytest.mark.parametrize("attempt", [
    lambda: socket.getaddrinfo("pypi.org", 443),
    lambda: socket.gethostbyname("pypi.org"),
    lambda: socket.gethostbyname_ex("pypi.org"),
    lambda: socket.gethostbyaddr("8.8.8.8"),
    lambda: socket.getnameinfo(("8.8.8.8", 53), 0),
    lambda: socket.create_connection(REMOTE, timeout=2),
    lambda: socket.create_connection(("pypi.org", 443), timeout=2),
    lambda: socket.socket().connect(REMOTE),
    lambda: socket.socket().connect_ex(REMOTE),
    lambda: _udp().sendto(b"x", ("8.8.8.8", 53)),
    lambda: _udp().sendto(b"x", 0, ("8.8.8.8", 53)),
    lambda: _udp().sendmsg([b"x"], [], 0, ("8.8.8.8", 53)),
    lambda: _udp().connect(("8.8.8.8", 53)),
    lambda: socket.socket(socket.AF_INET6).connect(("2606:4700:4700::1111", 80, 0, 0)),
    lambda: urllib.request.urlopen("http://example.com", timeout=2),
    lambda: asyncio.run(asyncio.open_connection(*REMOTE)),
], ids=["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "create_connection ip",
        "create_connection name", "connect", "connect_ex", "udp sendto", "udp sendto flags", "udp sendmsg", "udp connect",
        "ipv6 connect", "urllib", "asyncio"])
def test_every_way_out_is_blocked(attempt):
    with pytest.raises(OSError, match="blocked during the test run"):
        try:
            attempt()
        except Exception as err:  # urllib wraps the reason
            raise getattr(err, "reason", err) if isinstance(getattr(err, "reason", None), OSError) else err


def test_loopback_stays_open():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            client.sendall(b"ok")
            connection, _ = server.accept()
            assert connection.recv(2) == b"ok"
            connection.close()
    with _udp() as receiver, _udp() as sender:
        receiver.bind(("127.0.0.1", 0))
        sender.sendto(b"ping", receiver.getsockname())
        assert receiver.recv(4) == b"ping"
    assert socket.getaddrinfo("localhost", 80) and socket.gethostbyname("localhost").startswith("127.")


def test_a_python_child_process_is_blocked_too():
    env = {**os.environ, "CNN_BLOCK_NETWORK": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tools" / "netblock"), os.environ.get("PYTHONPATH", "")])}
    code = "import socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))\n" \
           "except ConnectionError as e:\n    print('blocked' if 'blocked' in str(e) else e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "blocked", out.stdout + out.stderr
