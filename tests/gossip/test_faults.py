"""The fault-injecting transport wrapper: drop, delay, jitter, duplicate, reorder and cut."""

from __future__ import annotations

import asyncio

import pytest

from gossip.errors import RequestTimeout
from gossip.faults import Faults, FaultyTransport
from gossip.messages import Ack, Message, Ping
from gossip.testing import InMemoryNetwork, make_wire, run_virtual
from gossip.transport import Sender


class Recorder:
    """Answers pings and remembers when each arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    async def __call__(self, message: Message, sender: Sender) -> Message | None:
        assert isinstance(message, Ping)
        self.seen.append((message.seq, asyncio.get_running_loop().time()))
        return Ack(message.seq)


async def _pair(seed: int = 1, **faults: object) -> tuple[FaultyTransport, Recorder, Recorder]:
    """A faulty transport at a:1 and a plain one at b:1 (and c:1), on a network with 1 ms latency."""
    network = InMemoryNetwork(seed=0, latency_s=0.001)
    faulty = FaultyTransport(network.transport("a:1", make_wire("a:1")), seed=seed, **faults)  # type: ignore[arg-type]
    await faulty.start(Recorder())
    recorders = []
    for address in ("b:1", "c:1"):
        recorder = Recorder()
        await network.transport(address, make_wire(address)).start(recorder)
        recorders.append(recorder)
    return faulty, recorders[0], recorders[1]


def test_no_faults_is_a_transparent_wrapper() -> None:
    async def main() -> None:
        faulty, _, _ = await _pair()
        assert faulty.local_address == "a:1"
        assert await faulty.request("b:1", Ping(1, "b"), timeout_s=1) == Ack(1)
        assert asyncio.get_running_loop().time() == pytest.approx(0.002)

    run_virtual(main)


def test_drop_loses_each_leg_at_about_the_set_rate_and_a_lost_reply_was_still_handled() -> None:
    async def main() -> tuple[int, FaultyTransport, Recorder]:
        faulty, b_seen, _ = await _pair(drop=0.3)
        failures = 0
        for seq in range(1000):
            try:
                await faulty.request("b:1", Ping(seq, "b"), timeout_s=0.5)
            except RequestTimeout:
                failures += 1
        return failures, faulty, b_seen

    failures, faulty, b_seen = run_virtual(main)
    assert failures / 1000 == pytest.approx(1 - 0.7**2, abs=0.05)
    assert faulty.counts["request_lost"] / 1000 == pytest.approx(0.3, abs=0.05)
    assert len(b_seen.seen) == 1000 - faulty.counts["request_lost"]  # lost replies were handled


def test_a_lost_leg_times_out_after_the_full_timeout() -> None:
    async def main() -> float:
        faulty, _, _ = await _pair(drop=1.0)
        with pytest.raises(RequestTimeout):
            await faulty.request("b:1", Ping(1, "b"), timeout_s=2.5)
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == pytest.approx(2.5)


def test_delay_and_jitter_add_to_the_round_trip_and_can_exceed_the_timeout() -> None:
    async def main() -> list[float]:
        faulty, _, _ = await _pair(delay_s=0.1, jitter_s=0.05)
        loop = asyncio.get_running_loop()
        round_trips = []
        for seq in range(50):
            started = loop.time()
            await faulty.request("b:1", Ping(seq, "b"), timeout_s=1)
            round_trips.append(loop.time() - started)
        faulty.set_faults(delay_s=5.0)
        started = loop.time()
        with pytest.raises(RequestTimeout, match="delayed"):
            await faulty.request("b:1", Ping(99, "b"), timeout_s=1)
        assert loop.time() - started == pytest.approx(1.0)
        return round_trips

    round_trips = run_virtual(main)
    assert all(0.102 - 1e-9 <= rtt <= 0.152 + 1e-9 for rtt in round_trips)
    assert max(round_trips) - min(round_trips) > 0.01


def test_a_cut_peer_is_unreachable_others_are_not_and_it_can_be_restored() -> None:
    async def main() -> None:
        faulty, b_seen, _ = await _pair(cut={"b:1"})
        with pytest.raises(RequestTimeout):
            await faulty.request("b:1", Ping(1, "b"), timeout_s=1)
        assert b_seen.seen == []
        assert await faulty.request("c:1", Ping(2, "c"), timeout_s=1) == Ack(2)
        faulty.set_faults(cut=set())
        assert await faulty.request("b:1", Ping(3, "b"), timeout_s=1) == Ack(3)
        assert faulty.counts["cut"] == 1

    run_virtual(main)


def test_duplicate_sends_the_message_twice_even_to_a_keyed_peer() -> None:
    async def main() -> list[int]:
        faulty, b_seen, _ = await _pair(duplicate=1.0)
        for seq in range(5):
            assert await faulty.request("b:1", Ping(seq, "b"), timeout_s=1) == Ack(seq)
        await asyncio.sleep(1)
        return sorted(seq for seq, _ in b_seen.seen)

    assert run_virtual(main) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_reorder_lets_later_requests_overtake() -> None:
    async def main() -> list[int]:
        faulty, b_seen, _ = await _pair(reorder=0.5, reorder_delay_s=0.05)
        await asyncio.gather(*(faulty.request("b:1", Ping(seq, "b"), timeout_s=1) for seq in range(20)))
        return [seq for seq, _ in b_seen.seen]

    arrival = run_virtual(main)
    assert sorted(arrival) == list(range(20)) and arrival != list(range(20))


def test_the_same_seed_meets_the_same_faults() -> None:
    def outcomes(seed: int) -> list[object]:
        async def main() -> list[object]:
            faulty, _, _ = await _pair(seed=seed, drop=0.3, jitter_s=0.01, duplicate=0.2)
            results: list[object] = []
            for seq in range(100):
                try:
                    results.append(await faulty.request("b:1", Ping(seq, "b"), timeout_s=0.1))
                except RequestTimeout:
                    results.append(("timeout", asyncio.get_running_loop().time()))
            return results

        return run_virtual(main)

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="probability"):
        Faults(drop=2.0)
    with pytest.raises(ValueError, match="delay_s"):
        Faults(delay_s=-1)

    async def main() -> None:
        faulty, _, _ = await _pair()
        with pytest.raises(TypeError, match="unknown faults"):
            faulty.set_faults(loss=0.1)
        faulty.set_faults(drop=0.5, cut=["b:1"])
        assert faulty.faults == Faults(drop=0.5, cut=frozenset({"b:1"}))
        faulty.clear()
        assert faulty.faults == Faults()
        await faulty.aclose()
        assert faulty.inner.closed  # type: ignore[attr-defined]

    run_virtual(main)
