"""Tests for node.hlc: monotonic, close to wall time, ahead of what it observed."""

from __future__ import annotations

from node.hlc import MAX_AHEAD_S, HybridClock, hlc_pack, hlc_physical_ms


class FakeWall:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def test_timestamps_strictly_increase_even_when_wall_time_stands_still_or_goes_back() -> None:
    """A frozen or backwards wall clock still yields increasing timestamps."""
    wall = FakeWall(1000.0)
    clock = HybridClock(wall)
    first = clock.now()
    second = clock.now()
    wall.now_s = 999.0
    third = clock.now()
    assert first < second < third
    assert hlc_physical_ms(first) == 1_000_000


def test_timestamps_follow_wall_time_when_it_advances() -> None:
    """With wall time moving forward, the physical part is the wall time."""
    wall = FakeWall(10.0)
    clock = HybridClock(wall)
    clock.now()
    wall.now_s = 20.0
    assert clock.now() == hlc_pack(20_000, 0)


def test_observed_remote_timestamp_bounds_the_next_one() -> None:
    """After observing a peer's timestamp from the future, the next local one is greater."""
    clock = HybridClock(FakeWall(10.0))
    remote = hlc_pack(50_000, 7)
    clock.observe(remote)
    assert clock.now() == remote + 1
    clock.observe(hlc_pack(1, 0))  # an old timestamp changes nothing
    assert clock.now() == remote + 2


def test_a_timestamp_far_ahead_of_the_wall_clock_is_not_followed() -> None:
    """Found by fuzzing: one record stamped 2**64 - 1 made every later timestamp unencodable
    (and a far-future one would drag the whole cluster's clocks): beyond MAX_AHEAD_S it is ignored."""
    wall = FakeWall(1000.0)
    clock = HybridClock(wall)
    assert not clock.observe(2**64 - 1)
    assert not clock.observe(hlc_pack(1_000_000 + int(MAX_AHEAD_S * 1000) + 1, 0))
    assert hlc_physical_ms(clock.now()) == 1_000_000
    near = hlc_pack(1_000_000 + int(MAX_AHEAD_S * 1000), 3)
    assert clock.observe(near)  # within the bound: followed, as before
    assert clock.now() == near + 1 < 2**64
