"""The retention policy for observation detail: what the model wrote is dropped after a while, its counts kept.

An observation record keeps, for each generated item, the entry it resolved to and how — the
counts the exhaustion estimate and each entry's evidence are computed from — for as long as
the set lives. Its detail (the text as generated, a fuzzy match's score) only serves the page's
"why was this dropped" view and is as large again as the counts (~25 B per item each), and
kept in memory too, so it lives beside the records (``node.store``'s ``observation_detail`` table, ``NodeState``'s
detail map) and is dropped once older than ``--observation-detail-days``. Dropping it changes
no record, key or digest: nodes with different retention settings still converge.

Age is the observation's hybrid-clock stamp against this node's wall clock, so a node whose
clock is behind keeps detail a little longer, never shorter than the cluster's clock skew
allows. SQLite reuses the freed pages for new rows; the file itself shrinks only on VACUUM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from node.hlc import hlc_pack
from node.state import NodeState
from node.store import Store, StoreWriteError

__all__ = ["DetailRetention", "RETENTION_CHECK_S", "detail_cutoff"]

log = logging.getLogger(__name__)

RETENTION_CHECK_S = 3600.0  # how often old detail is looked for: retention is counted in days
_DAY_S = 86_400.0


def detail_cutoff(now_s: float, keep_days: float) -> int:
    """The hybrid-clock stamp before which an observation's detail is older than ``keep_days``
    (0 when that is before the epoch: nothing is that old)."""
    cutoff_s = now_s - keep_days * _DAY_S
    return hlc_pack(int(cutoff_s * 1000), 0) if cutoff_s > 0 else 0


class DetailRetention:
    """Drops observation detail older than ``keep_days`` from the store and the state, now and
    every ``check_s``; ``keep_days = 0`` keeps it for ever (``run`` returns at once)."""

    def __init__(
        self,
        *,
        store: Store,
        state: NodeState,
        keep_days: float,
        wall: Callable[[], float],
        check_s: float = RETENTION_CHECK_S,
    ) -> None:
        self._store = store
        self._state = state
        self._keep_days = keep_days
        self._wall = wall
        self._check_s = check_s
        self.dropped = 0  # observations whose detail this node dropped since start

    def __repr__(self) -> str:
        return f"<DetailRetention keep_days={self._keep_days} dropped={self.dropped}>"

    async def drop_old(self) -> int:
        """Drop detail older than the retention period now; returns how many observations lost theirs.

        A disk that refuses the delete (full, read-only) leaves everything as it was, detail
        included, until the next check: memory and disk then still agree.
        """
        if self._keep_days <= 0:
            return 0
        cutoff = detail_cutoff(self._wall(), self._keep_days)
        try:
            stored = await self._store.prune_details(cutoff)
        except StoreWriteError as exc:
            log.warning("could not drop old observation detail (tried again in %.0f s): %s", self._check_s, exc)
            return 0
        in_memory = self._state.forget_details(cutoff)
        dropped = max(stored, in_memory)
        if dropped:
            self.dropped += dropped
            log.info("dropped the detail of %d observations older than %g days (their counts stay)",
                     dropped, self._keep_days)  # fmt: skip
        return dropped

    async def run(self) -> None:
        """Check now, then every ``check_s``, until cancelled. A check that fails for any reason
        is logged and tried again at the next one: the policy must not stop for good silently."""
        if self._keep_days <= 0:
            return
        while True:
            try:
                await self.drop_old()
            except Exception:
                log.exception("dropping old observation detail failed (tried again in %.0f s)", self._check_s)
            await asyncio.sleep(self._check_s)
