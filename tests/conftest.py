"""Session-scoped fixtures for real peers; each is torn down at session end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from support import peers


def _require(*binaries: str) -> None:
    missing = [b for b in binaries if not peers.have(b)]
    if missing:
        pytest.skip(f"binary not installed: {', '.join(missing)}")


def _serve(factory: Callable[[], peers.Peer]) -> Iterator[peers.Peer]:
    peer = factory()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def nginx_h1() -> Iterator[peers.Peer]:
    """nginx, HTTP/1.1, 1 worker, access log on (``count_requests()``)."""
    _require("nginx")
    yield from _serve(lambda: peers.nginx(h2c=False))


@pytest.fixture(scope="session")
def nginx_h2c() -> Iterator[peers.Peer]:
    """nginx, h2c prior knowledge only (``listen ... http2``), access log on."""
    _require("nginx")
    yield from _serve(lambda: peers.nginx(h2c=True))


@pytest.fixture(scope="session")
def h2o_server() -> Iterator[peers.Peer]:
    """h2o, 1 thread, h1 + h2c on one port, 12-byte '/', access log on."""
    _require("h2o")
    yield from _serve(lambda: peers.h2o(access_log=True))


@pytest.fixture(scope="session")
def nghttpd_tls() -> Iterator[peers.TLSPeer]:
    """nghttpd, TLS + ALPN h2, self-signed cert at ``.cert_path``; no request counting."""
    _require("nghttpd", "openssl")
    yield from _serve(peers.nghttpd_tls)  # type: ignore[misc]


@pytest.fixture(scope="session")
def nginx_tls() -> Iterator[peers.TLSPeer]:
    """nginx over TLS (ALPN h2 and http/1.1), self-signed cert at ``.cert_path``, access log
    on (``count_requests()``)."""
    _require("nginx", "openssl")
    yield from _serve(lambda: peers.nginx(tls=True))  # type: ignore[misc]


@pytest.fixture(scope="session")
def delay_server() -> Iterator[peers.FastloadPeer]:
    """``fastload serve --delay 20ms`` (``peers.DELAY_S``): h1 + h2c, counts via
    /__fastload/stats."""
    yield from _serve(lambda: peers.fastload_server(delay=f"{peers.DELAY_S * 1000:g}ms", h2c=True))  # type: ignore[misc]


@pytest.fixture(scope="session")
def h3_server() -> Iterator[peers.H3Peer]:
    """tests/servers/h3_server.py: aioquic HTTP/3 on UDP, self-signed cert at ``.cert_path``, counts
    the responses it sent (``count_requests()``)."""
    _require("openssl")
    yield from _serve(peers.h3_server)  # type: ignore[misc]
