"""Tests for gossip.probing's reachability confirmation (the probing itself: test_membership.py)."""

from __future__ import annotations

from gossip.probing import REACHABILITY_CHECKS, Reachability, confirmed_reachability


def _verdict(reached: tuple[str, ...], unreached: tuple[str, ...]) -> Reachability:
    return Reachability("10.0.0.1:7070", reached=reached, unreached=unreached, silent=())


async def test_an_unreachable_verdict_is_checked_again_and_a_lost_ping_is_forgiven() -> None:
    """Nacked once (a lost ping), reached the second time: one pause, no 'unreachable'."""
    verdicts = iter([_verdict((), ("n2",)), _verdict(("n2",), ())])
    pauses: list[int] = []

    async def pause() -> None:
        pauses.append(1)

    async def check() -> Reachability:
        return next(verdicts)

    found, checks = await confirmed_reachability(check, pause=pause)
    assert not found.unreachable and found.reached == ("n2",) and checks == 2 and pauses == [1]


async def test_a_node_nobody_reaches_is_reported_after_every_check_failed() -> None:
    """A wrong advertised address fails every check: the verdict stays 'unreachable' after all of them."""
    made: list[int] = []

    async def check() -> Reachability:
        made.append(1)
        return _verdict((), ("n2", "n3"))

    async def pause() -> None:
        return None

    found, checks = await confirmed_reachability(check, pause=pause)
    assert found.unreachable and checks == REACHABILITY_CHECKS == len(made)


async def test_a_reachable_node_is_checked_once() -> None:
    async def check() -> Reachability:
        return _verdict(("n2",), ("n3",))  # some could not, one could: a warning, not a recheck

    async def pause() -> None:
        raise AssertionError("no pause expected")

    assert await confirmed_reachability(check, pause=pause) == (_verdict(("n2",), ("n3",)), 1)
