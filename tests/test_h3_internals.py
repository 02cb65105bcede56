"""Every private aioquic member fastload.h3.aioquic_internals relies on, checked against the
installed aioquic: a version that renamed or reshaped one fails here, by name, instead of
silently losing the behaviour (pyproject.toml pins the versions these were checked on)."""

from __future__ import annotations

import inspect

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from fastload.h3 import aioquic_internals


def _callers(owner: object, name: str) -> list[str]:
    return [n for n, f in vars(owner).items() if inspect.isfunction(f) and name in f.__code__.co_names]


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
