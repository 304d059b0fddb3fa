"""Tests for node.hlc: monotonic, close to wall time, ahead of what it observed."""

from __future__ import annotations

from node.hlc import HybridClock, hlc_pack, hlc_physical_ms


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
