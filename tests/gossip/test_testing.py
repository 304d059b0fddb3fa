"""The virtual-time loop and the in-memory network that every gossip test and simulation runs on."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from gossip.clock import LoopClock
from gossip.errors import (
    AuthError,
    ClusterMismatch,
    ProtocolError,
    RequestTimeout,
    TransportError,
)
from gossip.messages import (
    MAX_UPDATES_PER_MESSAGE,
    Ack,
    MemberState,
    MemberUpdate,
    Message,
    MessageType,
    Nack,
    Ping,
)
from gossip.testing import (
    DEFAULT_WALL_START,
    InMemoryNetwork,
    InMemoryTransport,
    Leg,
    LinkConditions,
    TrafficCount,
    VirtualTimeLoop,
    make_wire,
    run_virtual,
    virtual_time,
)
from gossip.transport import Sender

# --- virtual time ---------------------------------------------------------------------------


def test_an_hour_of_virtual_sleep_takes_milliseconds() -> None:
    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    started = time.perf_counter()
    assert run_virtual(main) == 3600.0
    assert time.perf_counter() - started < 1  # microseconds really; loose for a loaded machine


def test_wait_for_and_timeout_fire_at_their_virtual_deadline() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fired = []
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), timeout=2.5)
        fired.append(loop.time())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.25):
                await asyncio.Event().wait()
        fired.append(loop.time())
        return fired

    assert run_virtual(main) == [2.5, 2.75]


def test_timers_run_in_deadline_order_whatever_the_order_they_were_set() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        order: list[tuple[str, float]] = []
        done = asyncio.Event()
        for name, delay in [("c", 3.0), ("a", 1.0), ("d", 1000.0), ("b", 2.0)]:
            loop.call_later(delay, lambda name: order.append((name, loop.time())), name)
        loop.call_later(1000.5, done.set)
        await done.wait()
        return order

    assert run_virtual(main) == [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 1000.0)]


def test_start_time_and_the_virtual_wall_clock() -> None:
    async def main() -> tuple[float, float, float, float]:
        clock = LoopClock()
        before = (clock.now(), clock.wall())
        await clock.sleep(30)
        return before + (clock.now(), clock.wall())

    assert run_virtual(main, start_time=100.0) == (100.0, DEFAULT_WALL_START, 130.0, DEFAULT_WALL_START + 30)


def test_an_executor_job_holds_virtual_time_until_it_finishes() -> None:
    """A 50 ms real thread job completes at the virtual instant it started; timers wait for it."""
    events: list[tuple[str, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)

        async def sleeper() -> None:
            await asyncio.sleep(5)
            events.append(("sleeper", loop.time()))

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)  # the sleeper's timer is pending from here on
        in_flight = loop.executor_jobs
        def job() -> str:
            time.sleep(0.05)
            return "done"

        result = await asyncio.to_thread(job)
        events.append((result, loop.time()))
        events.append(("jobs in flight during the job", float(in_flight + 1)))
        await task
        assert loop.executor_jobs == 0

    run_virtual(main)
    assert events[0] == ("done", 0.0)
    assert events[2] == ("sleeper", 5.0)


def test_call_soon_threadsafe_from_a_foreign_thread_wakes_an_idle_loop() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        def answer_later() -> None:
            time.sleep(0.02)
            loop.call_soon_threadsafe(future.set_result, "hi")

        threading.Thread(target=answer_later).start()
        return await future

    assert run_virtual(main) == "hi"


def test_run_virtual_accepts_a_coroutine_and_returns_its_value() -> None:
    async def main() -> int:
        await asyncio.sleep(1)
        return 7

    assert run_virtual(main()) == 7


@virtual_time
async def test_the_virtual_time_decorator_runs_an_async_test_with_sync_fixtures(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    await asyncio.sleep(86_400)
    assert loop.time() == 86_400.0
    assert tmp_path.is_dir()


def test_a_thousand_protocol_periods_of_a_small_cluster_take_1000_virtual_seconds_not_real_ones() -> None:
    """4,000 keyed exchanges over 1,000 virtual seconds; ~0.5 s real on an idle machine (bound loose: shared CI)."""

    async def main() -> tuple[int, float]:
        network = InMemoryNetwork(seed=1, latency_s=0.002, jitter_s=0.001)
        nodes = [await _node(network, f"n{i}:7000") for i in range(5)]
        answered = 0
        for period in range(1000):
            for i, (transport, _) in enumerate(nodes):
                target = nodes[(i + 1 + period) % 5][0].local_address
                if target != transport.local_address:
                    await transport.request(target, Ping(period, target), timeout_s=0.5)
                    answered += 1
            await asyncio.sleep(1.0)
        return answered, asyncio.get_running_loop().time()

    started = time.perf_counter()
    answered, virtual_elapsed = run_virtual(main)
    assert answered == 4000
    assert virtual_elapsed > 1000
    assert time.perf_counter() - started < 5


# --- the in-memory network ------------------------------------------------------------------


class Recorder:
    """A handler that answers a Ping with an Ack and remembers what it saw and when."""

    def __init__(self) -> None:
        self.seen: list[tuple[Message, Sender, float]] = []

    async def __call__(self, message: Message, sender: Sender) -> Message | None:
        self.seen.append((message, sender, asyncio.get_running_loop().time()))
        if isinstance(message, Ping):
            return Ack(message.seq)
        if isinstance(message, Nack):
            return None
        raise ProtocolError("only pings here")


async def _node(network: InMemoryNetwork, address: str, **wire_options: object) -> tuple[InMemoryTransport, list[tuple[Message, Sender, float]]]:
    """A serving transport at ``address`` and the list of what its handler has seen."""
    transport = network.transport(address, make_wire(address, **wire_options))  # type: ignore[arg-type]
    recorder = Recorder()
    await transport.start(recorder)
    return transport, recorder.seen


def test_an_exchange_takes_one_latency_each_way_and_the_handler_sees_the_sender() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1, latency_s=0.010)
        a, _ = await _node(network, "a:1", name="alpha")
        _, b_seen = await _node(network, "b:1")
        loop = asyncio.get_running_loop()
        reply = await a.request("b:1", Ping(9, "b"), timeout_s=1)
        assert reply == Ack(9)
        assert loop.time() == pytest.approx(0.020)
        message, sender, at = b_seen[0]
        assert message == Ping(9, "b")
        assert sender == Sender("alpha", "a:1")
        assert at == pytest.approx(0.010)

    run_virtual(main)


def test_jitter_stays_within_its_bound() -> None:
    async def main() -> list[float]:
        network = InMemoryNetwork(seed=3, latency_s=0.010, jitter_s=0.005)
        a, _ = await _node(network, "a:1")
        await _node(network, "b:1")
        loop = asyncio.get_running_loop()
        round_trips = []
        for seq in range(200):
            started = loop.time()
            await a.request("b:1", Ping(seq, "b"), timeout_s=1)
            round_trips.append(loop.time() - started)
        return round_trips

    round_trips = run_virtual(main)
    assert all(0.020 - 1e-9 <= rtt <= 0.030 + 1e-9 for rtt in round_trips)
    assert max(round_trips) - min(round_trips) > 0.005  # the jitter is really there


def test_loss_drops_each_leg_independently_at_about_the_set_rate() -> None:
    async def main() -> tuple[int, InMemoryNetwork]:
        network = InMemoryNetwork(seed=11, loss=0.2)
        a, _ = await _node(network, "a:1")
        await _node(network, "b:1")
        failures = 0
        for seq in range(2000):
            try:
                await a.request("b:1", Ping(seq, "b"), timeout_s=0.1)
            except RequestTimeout:
                failures += 1
        return failures, network

    failures, network = run_virtual(main)
    assert failures / 2000 == pytest.approx(1 - 0.8**2, abs=0.04)  # either leg lost: 36%
    lost, sent = network.lost(), network.traffic()
    request_key, reply_key = (MessageType.PING, Leg.REQUEST), (MessageType.PING, Leg.REPLY)
    assert sent[request_key].messages == 2000
    assert lost[request_key] / 2000 == pytest.approx(0.2, abs=0.03)
    assert lost[reply_key] / sent[reply_key].messages == pytest.approx(0.2, abs=0.03)


def test_a_partition_cuts_both_ways_between_groups_and_heal_restores_it() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        b, _ = await _node(network, "b:1")
        c, _ = await _node(network, "c:1")
        network.partition(["a:1", "b:1"], ["c:1"])
        assert await a.request("b:1", Ping(1, "b"), timeout_s=1) == Ack(1)
        for caller, target in [(a, "c:1"), (b, "c:1"), (c, "a:1"), (c, "b:1")]:
            with pytest.raises(RequestTimeout):
                await caller.request(target, Ping(2, "x"), timeout_s=1)
        network.heal()
        assert await c.request("a:1", Ping(3, "a"), timeout_s=1) == Ack(3)

    run_virtual(main)


def test_a_one_way_block_loses_requests_one_way_and_replies_the_other() -> None:
    """block(a, b): a's requests never reach b; b's reach a, but a's replies are lost."""

    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, a_seen = await _node(network, "a:1")
        b, b_seen = await _node(network, "b:1")
        network.block("a:1", "b:1")
        with pytest.raises(RequestTimeout):
            await a.request("b:1", Ping(1, "b"), timeout_s=1)
        assert b_seen == []
        with pytest.raises(RequestTimeout):
            await b.request("a:1", Ping(2, "a"), timeout_s=1)
        assert [seen[0] for seen in a_seen] == [Ping(2, "a")]
        network.unblock("a:1", "b:1")
        assert await a.request("b:1", Ping(3, "b"), timeout_s=1) == Ack(3)

    run_virtual(main)


def test_a_killed_node_never_answers_until_revived() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        b, b_seen = await _node(network, "b:1")
        network.kill("b:1")
        loop = asyncio.get_running_loop()
        with pytest.raises(RequestTimeout):
            await a.request("b:1", Ping(1, "b"), timeout_s=2)
        assert loop.time() == pytest.approx(2.0)
        with pytest.raises(RequestTimeout):  # nor does anything it sends arrive
            await b.request("a:1", Ping(2, "a"), timeout_s=1)
        assert b_seen == []
        network.revive("b:1")
        assert await a.request("b:1", Ping(3, "b"), timeout_s=1) == Ack(3)

    run_virtual(main)


def test_a_closed_or_unknown_address_refuses_the_connection_at_once() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        b, _ = await _node(network, "b:1")
        await b.aclose()
        await b.aclose()  # twice is fine
        for target in ("b:1", "nobody:1"):
            with pytest.raises(TransportError, match="connection refused") as caught:
                await a.request(target, Ping(1, "x"), timeout_s=5)
            assert not isinstance(caught.value, RequestTimeout)
        with pytest.raises(TransportError, match="closed"):
            await b.request("a:1", Ping(1, "a"), timeout_s=1)
        restarted, _ = await _node(network, "b:1")  # the address can be reused after close
        assert await a.request("b:1", Ping(2, "b"), timeout_s=1) == Ack(2)
        assert network.addresses == ["a:1", "b:1"]
        assert restarted.serving

    run_virtual(main)


def test_closing_a_transport_fails_its_pending_requests() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1, latency_s=1.0)
        a, _ = await _node(network, "a:1")
        await _node(network, "b:1")
        pending = asyncio.create_task(a.request("b:1", Ping(1, "b"), timeout_s=10))
        await asyncio.sleep(0.5)
        await a.aclose()
        with pytest.raises(TransportError, match="closed during the request"):
            await pending

    run_virtual(main)


def test_refusals_reach_the_caller_as_the_same_errors_as_over_http() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        await _node(network, "wrong-key:1", key=b"another key")
        await _node(network, "other-cluster:1", cluster="other")
        await _node(network, "open:1", key=None)
        _, b_seen = await _node(network, "b:1")
        with pytest.raises(AuthError, match="peer wrong-key:1 refused our message: bad MAC"):
            await a.request("wrong-key:1", Ping(1, "x"), timeout_s=1)
        with pytest.raises(ClusterMismatch, match="peer other-cluster:1 belongs to cluster 'other'.*'test-cluster'"):
            await a.request("other-cluster:1", Ping(1, "x"), timeout_s=1)
        with pytest.raises(AuthError, match="has no cluster key"):
            await a.request("open:1", Ping(1, "x"), timeout_s=1)
        with pytest.raises(ProtocolError, match="refused our message as invalid: only pings here"):
            await a.request("b:1", Ack(1), timeout_s=1)  # the handler raises ProtocolError
        assert await a.request("b:1", Nack(4), timeout_s=1) is None  # a handler may answer nothing
        assert len(b_seen) == 2

    run_virtual(main)


def test_a_handler_crash_is_a_transport_error_for_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    async def crash(message: Message, sender: Sender) -> Message | None:
        raise RuntimeError("boom")

    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        b = network.transport("b:1", make_wire("b:1"))
        await b.start(crash)
        with pytest.raises(TransportError, match="RuntimeError: boom"):
            await a.request("b:1", Ping(1, "b"), timeout_s=1)

    run_virtual(main)
    assert "handler failed" in caplog.text


def test_duplicated_requests_run_an_open_handler_twice_but_a_keyed_one_once() -> None:
    """A keyed receiver's replay cache refuses the duplicate copy; an open cluster has none."""

    async def main(key: bytes | None) -> int:
        network = InMemoryNetwork(seed=1, duplicate=1.0)
        a, _ = await _node(network, "a:1", key=key)
        _, b_seen = await _node(network, "b:1", key=key)
        for seq in range(10):
            assert await a.request("b:1", Ping(seq, "b"), timeout_s=1) == Ack(seq)
        await asyncio.sleep(1)
        return len(b_seen)

    assert run_virtual(main(None)) == 20
    assert run_virtual(main(b"key")) == 10


def test_reorder_lets_later_requests_overtake_earlier_ones() -> None:
    async def main() -> list[int]:
        network = InMemoryNetwork(seed=5, latency_s=0.001, reorder=0.5, reorder_delay_s=0.05)
        a, _ = await _node(network, "a:1")
        _, b_seen = await _node(network, "b:1")
        await asyncio.gather(*(a.request("b:1", Ping(seq, "b"), timeout_s=1) for seq in range(20)))
        return [seen[0].seq for seen in b_seen if isinstance(seen[0], Ping)]

    arrival = run_virtual(main)
    assert sorted(arrival) == list(range(20))
    assert arrival != list(range(20))


def test_link_overrides_apply_per_direction_or_both_ways() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1, latency_s=0.001)
        a, _ = await _node(network, "a:1")
        b, _ = await _node(network, "b:1")
        await _node(network, "c:1")
        loop = asyncio.get_running_loop()
        network.set_link("a:1", "b:1", latency_s=0.1)
        network.set_link("a:1", "c:1", symmetric=False, latency_s=0.5)
        assert network.link("c:1", "a:1") == LinkConditions(latency_s=0.001)

        async def round_trip(caller: InMemoryTransport, target: str) -> float:
            started = loop.time()
            await caller.request(target, Ping(1, "x"), timeout_s=5)
            return loop.time() - started

        assert await round_trip(a, "b:1") == pytest.approx(0.2)
        assert await round_trip(b, "a:1") == pytest.approx(0.2)
        assert await round_trip(a, "c:1") == pytest.approx(0.501)
        assert await round_trip(b, "c:1") == pytest.approx(0.002)
        network.clear_link("a:1", "b:1")
        network.set_defaults(latency_s=0.01)
        assert await round_trip(a, "b:1") == pytest.approx(0.02)
        with pytest.raises(TypeError, match="unknown link conditions"):
            network.set_link("a:1", "b:1", latency=1)
        with pytest.raises(ValueError, match="probability"):
            network.set_defaults(loss=1.5)

    run_virtual(main)


def test_a_stalled_node_answers_late_and_sends_late() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1, latency_s=0.001)
        a, a_seen = await _node(network, "a:1")
        b, b_seen = await _node(network, "b:1")
        loop = asyncio.get_running_loop()
        network.stall("b:1", 5.0)
        with pytest.raises(RequestTimeout):
            await a.request("b:1", Ping(1, "b"), timeout_s=1)
        assert b_seen == []  # still stalled: the request waits at b
        with pytest.raises(RequestTimeout):  # b's own probe leaves only after the stall
            await b.request("a:1", Ping(2, "a"), timeout_s=1)
        await asyncio.sleep(5)
        assert b_seen[0][2] == pytest.approx(5.0)
        assert a_seen[0][2] == pytest.approx(5.001)
        assert await a.request("b:1", Ping(3, "b"), timeout_s=1) == Ack(3)
        assert loop.time() == pytest.approx(7.002)

    run_virtual(main)


def test_counters_count_messages_and_bytes_per_type_leg_and_node() -> None:
    async def main() -> InMemoryNetwork:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        await _node(network, "b:1")
        for seq in range(3):
            await a.request("b:1", Ping(seq, "b"), timeout_s=1)
        await a.request("b:1", Nack(1), timeout_s=1)
        return network

    network = run_virtual(main)
    traffic = network.traffic()
    ping_bytes = traffic[(MessageType.PING, Leg.REQUEST)].bytes
    assert traffic[(MessageType.PING, Leg.REQUEST)].messages == 3
    assert 3 * 60 < ping_bytes < 3 * 120  # a keyed ping envelope is ~80 bytes
    assert traffic[(MessageType.NACK, Leg.REPLY)] == TrafficCount(1, 0)  # an empty reply
    node = network.node_traffic()
    assert node["a:1"].messages == 4 and node["b:1"].messages == 4
    assert network.total().messages == 8
    assert network.total().bytes == node["a:1"].bytes + node["b:1"].bytes
    network.reset_counters()
    assert network.total() == TrafficCount(0, 0)


def _chaotic_run(seed: int) -> list[object]:
    async def main() -> list[object]:
        network = InMemoryNetwork(seed=seed, latency_s=0.002, jitter_s=0.003, loss=0.1, duplicate=0.1,
                                  reorder=0.2, record_events=True)  # fmt: skip
        nodes = [await _node(network, f"n{i}:1") for i in range(4)]
        outcomes: list[object] = []

        async def prober(index: int) -> None:
            transport = nodes[index][0]
            for seq in range(50):
                target = f"n{(index + 1 + seq) % 4}:1"
                if target == transport.local_address:
                    continue
                try:
                    outcomes.append((index, seq, await transport.request(target, Ping(seq, target), timeout_s=0.02)))
                except RequestTimeout:
                    outcomes.append((index, seq, "timeout", asyncio.get_running_loop().time()))
                await asyncio.sleep(0.01)

        await asyncio.gather(*(prober(i) for i in range(4)))
        return [*outcomes, *network.events]

    return run_virtual(main)


def test_the_same_seed_gives_the_same_run_event_for_event() -> None:
    first, second, other = _chaotic_run(42), _chaotic_run(42), _chaotic_run(43)
    assert first == second
    assert first != other
    assert any(getattr(event, "outcome", None) == "lost" for event in first)


def test_a_transport_needs_a_wire_sealing_its_own_address() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        with pytest.raises(ValueError, match="wire seals sender address"):
            network.transport("a:1", make_wire("b:1"))
        network.transport("a:1", make_wire("a:1"))
        with pytest.raises(ValueError, match="already taken"):
            network.transport("a:1", make_wire("a:1"))

    run_virtual(main)


def test_aclose_cancels_messages_in_flight() -> None:
    async def main() -> None:
        network = InMemoryNetwork(seed=1, latency_s=10)
        a, _ = await _node(network, "a:1")
        _, b_seen = await _node(network, "b:1")
        pending = asyncio.create_task(a.request("b:1", Ping(1, "b"), timeout_s=60))
        await asyncio.sleep(1)
        assert "in_flight=1" in repr(network)
        await network.aclose()
        with pytest.raises(RequestTimeout):
            await pending
        assert b_seen == []

    run_virtual(main)


def test_a_reply_too_big_to_seal_is_the_receivers_failure_not_the_callers() -> None:
    async def oversized(message: Message, sender: Sender) -> Message | None:
        return Ack(1, (MemberUpdate("n", "a:1", 1, MemberState.ALIVE),) * (MAX_UPDATES_PER_MESSAGE + 1))

    async def main() -> None:
        network = InMemoryNetwork(seed=1)
        a, _ = await _node(network, "a:1")
        await network.transport("b:1", make_wire("b:1")).start(oversized)
        with pytest.raises(TransportError, match="status 500.*could not be sealed"):
            await a.request("b:1", Ping(1, "b"), timeout_s=1)

    run_virtual(main)
