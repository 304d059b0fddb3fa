"""The transmit-limited queue: retransmit limits, ordering, invalidation, bounds (memberlist's queue.go)."""

from __future__ import annotations

import functools

import pytest

from gossip.queue import TransmitLimitedQueue, retransmit_limit


def make_queue(cluster_size: int = 10, *, mult: int = 1, max_queued: int = 100) -> TransmitLimitedQueue[str]:
    return TransmitLimitedQueue(retransmit_mult=mult, cluster_size=lambda: cluster_size, max_queued=max_queued)


@pytest.mark.parametrize(
    ("mult", "size", "limit"),
    # memberlist util_test.go TestRetransmitLimit, then the LAN multiplier.
    [(3, 0, 0), (3, 1, 3), (3, 9, 3), (3, 99, 6), (4, 5, 4), (4, 50, 8), (4, 200, 12)],
)
def test_retransmit_limit_is_mult_times_ceil_log10_of_n_plus_one(mult: int, size: int, limit: int) -> None:
    """mult × ⌈log10(N + 1)⌉."""
    assert retransmit_limit(mult, size) == limit


def test_each_rumour_is_handed_out_limit_times_then_dropped() -> None:
    """With N = 10 and mult 2 a rumour goes out 4 times, then leaves the queue."""
    queue = make_queue(10, mult=2)
    queue.enqueue("a", "rumour a")
    sends = [queue.take(max_items=10) for _ in range(5)]
    assert sends == [["rumour a"]] * 4 + [[]]
    assert len(queue) == 0


def test_limit_follows_the_cluster_size_at_take_time() -> None:
    """The cluster size is read at each take, so a grown cluster retransmits more."""
    size = [1]
    queue: TransmitLimitedQueue[str] = TransmitLimitedQueue(retransmit_mult=1, cluster_size=lambda: size[0],
                                                            max_queued=10)  # fmt: skip
    queue.enqueue("a", "a")
    size[0] = 50  # limit 2
    assert queue.take(max_items=1) == ["a"]
    assert queue.take(max_items=1) == ["a"]
    assert queue.take(max_items=1) == []


def test_fewest_transmitted_first_then_largest_then_newest() -> None:
    """Fresh rumours go first; among equals, bigger ones, then newer ones (memberlist's order)."""
    queue = make_queue(1000, mult=3)
    queue.enqueue("old", "old")
    assert queue.take(max_items=1) == ["old"]  # old now has 1 transmit
    queue.enqueue("small", "small", size_bytes=10)
    queue.enqueue("big", "big", size_bytes=100)
    queue.enqueue("small-newer", "small-newer", size_bytes=10)
    assert queue.take(max_items=4) == ["big", "small-newer", "small", "old"]


def test_a_newer_rumour_with_the_same_key_replaces_the_older() -> None:
    """Only the newest word about a key is sent; the older one is finished."""
    finished: list[str] = []
    queue = make_queue()
    queue.enqueue("n1", "n1 suspect", on_done=lambda: finished.append("suspect"))
    queue.enqueue("n2", "n2 alive")
    queue.enqueue("n1", "n1 alive again")
    assert finished == ["suspect"]
    assert sorted(queue.take(max_items=10)) == ["n1 alive again", "n2 alive"]
    assert queue.get("n1") == "n1 alive again"


def test_replacement_starts_the_transmit_count_afresh() -> None:
    """A replacing rumour is news: its count starts at zero."""
    queue = make_queue(10, mult=2)
    queue.enqueue("k", "first")
    queue.take(max_items=1)
    queue.take(max_items=1)
    queue.enqueue("k", "second")
    assert queue.transmits("k") == 0


def test_take_respects_item_and_byte_budgets() -> None:
    """max_items caps the count; max_bytes (with per-item overhead) skips what does not fit."""
    queue = make_queue()
    queue.enqueue("a", "a", size_bytes=60)
    queue.enqueue("b", "b", size_bytes=30)
    queue.enqueue("c", "c", size_bytes=20)
    assert queue.take(max_items=2) == ["a", "b"]
    queue2 = make_queue()
    queue2.enqueue("a", "a", size_bytes=60)
    queue2.enqueue("b", "b", size_bytes=30)
    queue2.enqueue("c", "c", size_bytes=20)
    # 100 bytes with 5 of overhead each: a (65) fits, b (35) would make 100 — fits; c does not.
    assert queue2.take(max_items=10, max_bytes=100, overhead_bytes=5) == ["a", "b"]
    # The one skipped for size is still queued, untransmitted.
    assert queue2.transmits("c") == 0


def test_on_done_runs_once_when_the_limit_is_reached() -> None:
    """Finished means: will not be sent again (leave waits on this)."""
    done: list[str] = []
    queue = make_queue(1, mult=2)
    queue.enqueue("a", "a", on_done=lambda: done.append("a"))
    queue.take(max_items=1)
    assert done == []
    queue.take(max_items=1)
    assert done == ["a"]
    queue.take(max_items=1)
    assert done == ["a"]


def test_queue_is_bounded_dropping_the_most_transmitted() -> None:
    """Past max_queued, the rumours sent most often are dropped first (and finished)."""
    done: list[str] = []
    queue = make_queue(1000, mult=5, max_queued=3)
    for key in ("a", "b", "c"):
        queue.enqueue(key, key, on_done=functools.partial(done.append, key))
    queue.take(max_items=1)  # c (newest) transmitted once
    queue.enqueue("d", "d")
    assert len(queue) == 3
    assert done == ["c"]
    assert "c" not in queue and "d" in queue


def test_clear_finishes_everything() -> None:
    """clear() empties the queue and calls every on_done."""
    done: list[str] = []
    queue = make_queue()
    queue.enqueue("a", "a", on_done=lambda: done.append("a"))
    queue.enqueue("b", "b", on_done=lambda: done.append("b"))
    queue.clear()
    assert len(queue) == 0 and sorted(done) == ["a", "b"]


def test_a_failing_on_done_does_not_break_the_queue(caplog: pytest.LogCaptureFixture) -> None:
    """A callback's exception is logged; the queue carries on."""
    queue = make_queue(1, mult=1)

    def explode() -> None:
        raise RuntimeError("boom")

    queue.enqueue("a", "a", on_done=explode)
    queue.enqueue("b", "b")
    assert sorted(queue.take(max_items=5)) == ["a", "b"]
    assert len(queue) == 0
    assert "on_done callback" in caplog.text


def test_empty_and_zero_budget_takes_return_nothing() -> None:
    """Nothing queued, or max_items 0: an empty batch, no transmission counted."""
    queue = make_queue()
    assert queue.take(max_items=5) == []
    queue.enqueue("a", "a")
    assert queue.take(max_items=0) == []
    assert queue.transmits("a") == 0


def test_constructor_validates_its_bounds() -> None:
    """Multiplier and bound must be positive."""
    with pytest.raises(ValueError):
        make_queue(mult=0)
    with pytest.raises(ValueError):
        make_queue(max_queued=0)
