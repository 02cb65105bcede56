"""Every private aioquic member fastload.h3.aioquic_internals relies on, checked against the
installed aioquic: a version that renamed or reshaped one fails here, by name, instead of
silently losing the behaviour (pyproject.toml pins the versions these were checked on)."""

from __future__ import annotations

import inspect

import pytest
from aioquic.h3 import connection as h3c
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from fastload.h3 import aioquic_internals


def _callers(owner: object, name: str) -> list[str]:
    return [n for n, f in vars(owner).items() if inspect.isfunction(f) and name in f.__code__.co_names]


def test_header_validators_are_module_globals_looked_up_at_call_time():
    # cache_header_checks replaces the module attributes: that only works while aioquic calls
    # them by their global name, with these signatures.
    assert list(inspect.signature(h3c.validate_header_name).parameters) == ["key"]
    assert list(inspect.signature(h3c.validate_header_value).parameters) == ["key", "value"]
    assert _callers(h3c, "validate_header_name") and _callers(h3c, "validate_header_value")


def test_cached_validators_still_reject_what_aioquic_rejects():
    aioquic_internals.cache_header_checks()
    assert getattr(h3c.validate_header_name, "_fastload_cached", False)
    h3c.validate_header_name(b"content-type")
    h3c.validate_header_name(b"content-type")  # from the cache now
    with pytest.raises(Exception, match="invalid"):
        h3c.validate_header_name(b"Bad Name")
    with pytest.raises(Exception):  # noqa: B017 - aioquic's own error type
        h3c.validate_header_value(b"x", b" leading space")


def test_check_content_length_is_the_hook_overridden_for_head_and_304():
    params = list(inspect.signature(h3c.H3Connection._check_content_length).parameters)
    assert params == ["self", "stream"]
    assert _callers(h3c.H3Connection, "_check_content_length")
    assert aioquic_internals.ClientH3._check_content_length is not h3c.H3Connection._check_content_length


def test_ack_delay_is_an_attribute_of_the_connection():
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True))
    assert isinstance(quic._ack_delay, float) and quic._ack_delay > 0
    aioquic_internals.ack_at_once(quic)
    assert quic._ack_delay == 0.0


def test_remote_max_streams_and_close_event_are_attributes_of_the_connection():
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True))
    assert isinstance(quic._remote_max_streams_bidi, int)
    assert aioquic_internals.remote_max_streams_bidi(quic) == quic._remote_max_streams_bidi
    assert quic._close_event is None  # read by the session: a close decided, not yet reported
    assert _callers(QuicConnection, "_close_event")


def test_qh3_members_the_session_uses():
    # --h3-backend qh3: its public stream limit (a running total, like aioquic's) and the
    # close event the session reads before ConnectionTerminated is reported.
    qh3_connection = pytest.importorskip("qh3.quic.connection")
    from qh3.quic.configuration import QuicConfiguration as Qh3Configuration

    quic = qh3_connection.QuicConnection(configuration=Qh3Configuration(is_client=True))
    assert quic.max_concurrent_bidi_streams == 0  # no peer yet
    assert quic._close_event is None
    assert hasattr(quic, "receive_datagram") and hasattr(quic, "datagrams_to_send")
