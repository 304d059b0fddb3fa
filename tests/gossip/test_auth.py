"""Sealing and opening envelopes: keys, clusters, freshness, replays, and the refusal mapping."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import replace
from typing import Any

import pytest

from gossip.auth import Refusal, RejectionLog, Wire
from gossip.errors import (
    AuthError,
    ClusterMismatch,
    DecodeError,
    ProtocolError,
    TransportError,
)
from gossip.messages import (
    PROTOCOL_VERSION,
    MessageType,
    Nack,
    Ping,
    decode_frame,
    encode_frame,
)

KEY = b"0123456789abcdef0123456789abcdef"


class FakeClock:
    """Wall-clock seconds that only move when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _wire(name: str = "n1", *, key: bytes | None = KEY, cluster: str = "c1", clock: FakeClock | None = None,
          **options: Any) -> Wire:  # fmt: skip
    return Wire(cluster, key=key, name=name, address=f"{name}.local:7000", clock=clock or FakeClock(), **options)


def test_a_sealed_message_opens_with_its_sender_and_stamp() -> None:
    clock = FakeClock()
    sealed = _wire("n1", clock=clock).seal(Ping(7, "n2"))
    envelope = _wire("n2", clock=clock).open(sealed)
    assert (envelope.message, envelope.sender, envelope.sender_address) == (Ping(7, "n2"), "n1", "n1.local:7000")
    assert (envelope.cluster, envelope.version, envelope.timestamp_ms) == ("c1", PROTOCOL_VERSION, 1_700_000_000_000)
    assert len(decode_frame(sealed).mac) == 32


def test_each_seal_has_a_fresh_nonce() -> None:
    wire = _wire()
    assert decode_frame(wire.seal(Nack(1))).nonce != decode_frame(wire.seal(Nack(1))).nonce


def test_a_wrong_key_is_refused() -> None:
    with pytest.raises(AuthError, match="bad MAC .*wrong cluster key"):
        _wire("n2", key=b"another key").open(_wire("n1").seal(Ping(1, "n2")))


def test_a_tampered_message_is_refused_before_its_body_is_parsed() -> None:
    frame = decode_frame(_wire("n1").seal(Nack(1)))
    for tampered in (replace(frame, body=b"\xc1garbage"), replace(frame, sender="n9")):
        with pytest.raises(AuthError, match="bad MAC"):
            _wire("n2").open(encode_frame(tampered))


def test_keyed_and_open_nodes_refuse_each_other() -> None:
    with pytest.raises(AuthError, match="carries no MAC but this cluster requires a key"):
        _wire("n2").open(_wire("n1", key=None).seal(Ping(1, "n2")))
    with pytest.raises(AuthError, match="carries a MAC but this node has no cluster key"):
        _wire("n2", key=None).open(_wire("n1").seal(Ping(1, "n2")))


def test_open_clusters_need_no_key() -> None:
    assert _wire("n2", key=None).open(_wire("n1", key=None).seal(Ping(1, "n2"))).message == Ping(1, "n2")


def test_another_cluster_is_refused_naming_both_ids() -> None:
    sealed = _wire("n1", cluster="paris-attractions").seal(Ping(1, "n2"))
    with pytest.raises(ClusterMismatch, match="belongs to cluster 'paris-attractions', this node belongs to cluster 'c1'"):
        _wire("n2").open(sealed)


@pytest.mark.parametrize("offset_s", [61.0, -61.0, 3600.0])
def test_a_timestamp_outside_the_allowed_skew_is_refused(offset_s: float) -> None:
    sender_clock, receiver_clock = FakeClock(), FakeClock()
    sealed = _wire("n1", clock=sender_clock).seal(Ping(1, "n2"))
    receiver_clock.now += offset_s
    with pytest.raises(AuthError, match="limit ±60 s"):
        _wire("n2", clock=receiver_clock).open(sealed)


def test_a_timestamp_within_the_skew_is_accepted() -> None:
    receiver_clock = FakeClock()
    sealed = _wire("n1").seal(Ping(1, "n2"))
    receiver_clock.now += 59.0
    assert _wire("n2", clock=receiver_clock).open(sealed).message == Ping(1, "n2")


def test_a_replayed_message_is_refused() -> None:
    clock = FakeClock()
    receiver = _wire("n2", clock=clock)
    sealed = _wire("n1", clock=clock).seal(Ping(1, "n2"))
    receiver.open(sealed)
    clock.now += 30
    with pytest.raises(AuthError, match="replayed"):
        receiver.open(sealed)


def test_a_refused_message_leaves_the_replay_cache_untouched() -> None:
    """Only a fully valid message is remembered: failures change no state."""
    clock = FakeClock()
    receiver = _wire("n2", clock=clock)
    sealed = _wire("n1", clock=clock).seal(Ping(1, "n2"))
    frame = decode_frame(sealed)
    with pytest.raises(AuthError):
        receiver.open(encode_frame(replace(frame, mac=b"\x00" * 32)))
    # Authentic header and MAC, but a body that does not decode:
    bad_body = replace(frame, body=b"\x91\xc0", type=MessageType.NACK)
    bad_body = replace(bad_body, mac=hmac.new(KEY, bad_body.signed_bytes(), hashlib.sha256).digest())
    with pytest.raises(DecodeError):
        receiver.open(encode_frame(bad_body))
    assert "nonces=0" in repr(receiver)
    receiver.open(sealed)
    assert "nonces=1" in repr(receiver)


def test_nonces_are_forgotten_after_the_replay_window() -> None:
    clock = FakeClock()
    receiver = _wire("n2", clock=clock)
    for seq in range(3):
        receiver.open(_wire("n1", clock=clock).seal(Nack(seq)))
    clock.now += 121
    receiver.open(_wire("n1", clock=clock).seal(Nack(9)))
    assert "nonces=1" in repr(receiver)


def test_a_full_replay_cache_refuses_replays_of_what_it_forgot() -> None:
    """Bounded memory must not open a hole: anything as old as a forgotten nonce is refused."""
    clock = FakeClock()
    receiver = _wire("n2", clock=clock, max_remembered_nonces=3)
    sender = _wire("n1", clock=clock)
    first = sender.seal(Nack(0))
    receiver.open(first)
    for seq in range(1, 4):
        clock.now += 0.01
        receiver.open(sender.seal(Nack(seq)))
    assert "nonces=3" in repr(receiver)
    with pytest.raises(AuthError, match="older than this node's replay cache reaches"):
        receiver.open(first)
    clock.now += 0.01
    assert receiver.open(sender.seal(Nack(5))).message == Nack(5)


def test_malformed_bytes_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        _wire().open(b"not msgpack at all \xc1")


def test_wire_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="replay_window_s >= 2 \\* max_skew_s"):
        _wire(max_skew_s=60, replay_window_s=100)
    with pytest.raises(ValueError, match="non-empty bytes"):
        _wire(key=b"")
    with pytest.raises(ValueError, match="cluster must be"):
        _wire(cluster="")
    wire = _wire()
    wire.address = "10.0.0.1:7001"
    assert wire.address == "10.0.0.1:7001" and wire.keyed and wire.cluster == "c1" and wire.name == "n1"


@pytest.mark.parametrize(
    ("refusal", "error", "match"),
    [
        (Refusal(403, "…", "other"), ClusterMismatch, "peer p:1 belongs to cluster 'other', this node to cluster 'c1'"),
        (Refusal(401, "bad MAC"), AuthError, "peer p:1 refused our message: bad MAC"),
        (Refusal(400, "broken"), ProtocolError, "refused our message as invalid: broken"),
        (Refusal(413, "too big"), ProtocolError, "as too large: too big"),
        (Refusal(500, "boom"), TransportError, "status 500"),
        (Refusal(503, "not serving"), TransportError, "status 503"),
    ],
)
def test_refusals_map_to_the_callers_errors(refusal: Refusal, error: type[Exception], match: str) -> None:
    produced = refusal.error("p:1", cluster="c1")
    assert type(produced) is error
    assert match in str(produced)


def test_errors_map_to_refusal_statuses() -> None:
    assert Refusal.of(ClusterMismatch("x"), cluster="c1") == Refusal(403, "x", "c1")
    assert Refusal.of(AuthError("x"), cluster="c1").status == 401
    assert Refusal.of(DecodeError("x"), cluster="c1").status == 400
    assert Refusal.of(TransportError("x"), cluster="c1").status == 500


def test_rejections_are_logged_once_per_peer_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    log = RejectionLog(logging.getLogger("test.rejections"), interval_s=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.rejections"):
        for _ in range(5):
            log.refused("10.0.0.9", "bad MAC")
        log.refused("10.0.0.8", "other cluster")
        clock.now = 61
        log.refused("10.0.0.9", "bad MAC")
    assert [record.getMessage() for record in caplog.records] == [
        "refused gossip from 10.0.0.9: bad MAC",
        "refused gossip from 10.0.0.8: other cluster",
        "refused gossip from 10.0.0.9: bad MAC (and 4 more in the last 60 s)",
    ]


def test_open_can_require_a_message_type_and_then_remembers_nothing() -> None:
    receiver = _wire("n2")
    sealed = _wire("n1").seal(Ping(1, "n2"))
    with pytest.raises(ProtocolError, match="expected a NACK message, got PING"):
        receiver.open(sealed, expect=MessageType.NACK)
    assert receiver.open(sealed, expect=MessageType.PING).message == Ping(1, "n2")
