"""The gossip layer's configuration: one frozen dataclass, profiles as classmethods.

Defaults follow hashicorp/memberlist's ``DefaultLANConfig`` (memberlist ``config.go``) where
memberlist has the knob; the others (reconnecting to failed members, reaping, joining) follow
Serf, which adds them on top of memberlist. Every duration is in seconds and says so in its
name. Validation happens at construction: an invalid config never exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from gossip.errors import GossipError

__all__ = ["ConfigError", "GossipConfig"]


class ConfigError(GossipError):
    """A gossip configuration value is invalid; the message names the field and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class GossipConfig:
    """How membership (SWIM + Lifeguard) runs. ``lan()`` for real networks, ``local()`` for tests."""

    # Probe one member this often (SWIM's protocol period T'). Shorter detects failures sooner
    # and costs more messages: every member sends about one probe per period.
    probe_interval_s: float = 1.0
    # Wait this long for a direct ack before asking others to probe indirectly. Should be about
    # the network's 99th-percentile round trip: shorter raises false suspicions under load.
    probe_timeout_s: float = 0.5
    # Members asked to probe indirectly (SWIM's k). More survive lossy paths better and cost
    # k extra requests per failed probe; 0 disables indirect probes.
    indirect_checks: int = 3
    # Suspicion timeout = mult × max(1, log10 N) × probe interval (memberlist). Higher gives a
    # suspect more time to refute (fewer false deaths) and detects real failures later.
    suspicion_mult: int = 4
    # With no independent confirmations the suspicion lasts this multiple of the timeout above
    # (Lifeguard); k = suspicion_mult − 2 confirmations drive it down to 1×.
    suspicion_max_timeout_mult: int = 6
    # Each rumour is piggybacked retransmit_mult × ⌈log10(N + 1)⌉ times. Higher spreads more
    # surely under loss and makes messages larger for longer.
    retransmit_mult: int = 4
    # Gossip queued rumours this often to gossip_nodes random members, on top of piggybacking
    # them on probes. Shorter spreads faster and sends more requests.
    gossip_interval_s: float = 0.2
    # Members gossiped to per gossip interval (memberlist's GossipNodes); 0 disables the loop
    # and leaves dissemination to probes alone (slower).
    gossip_nodes: int = 3
    # Keep gossiping to a member this long after declaring it dead, so a member that was only
    # cut off hears it and refutes. Longer heals short partitions faster, costs wasted sends.
    gossip_to_the_dead_s: float = 30.0
    # Full state exchange with a random member this often (scaled up past 32 members, as
    # memberlist does). Repairs anything gossip missed; each exchange sends the whole table.
    # 0 disables it.
    push_pull_interval_s: float = 30.0
    # Bound on one push-pull (join or periodic) request. Whole tables are larger than pings.
    push_pull_timeout_s: float = 10.0
    # Lifeguard's local health multiplier: probe interval and timeouts are scaled by up to this
    # factor while this member is missing acks and nacks (it is the slow one). 1 disables it.
    awareness_max_multiplier: int = 8
    # Try a push-pull with a random failed (dead, not left) member this often, with probability
    # failed/alive (Serf's reconnect), so a healed partition merges. 0 disables it.
    reconnect_interval_s: float = 30.0
    # Forget dead and left members this long after they died or left. Longer keeps them
    # reconnectable (and visible) after a long partition; each costs a row in every push-pull.
    reap_after_s: float = 24 * 3600.0
    # Rumours waiting to be piggybacked, at most; beyond it the most-transmitted are dropped
    # (push-pull repairs what they would have said).
    max_queued_updates: int = 4096
    # join() keeps retrying the seeds for this long before raising JoinError.
    join_timeout_s: float = 60.0
    # First pause between join attempts; it doubles (with jitter) up to join_retry_max_s.
    join_retry_initial_s: float = 0.5
    join_retry_max_s: float = 5.0  # longest pause between join attempts

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float | int) and not math.isfinite(value):
                raise ConfigError(f"{field.name} must be a finite number, got {value!r}")
        _require(self.probe_interval_s > 0, "probe_interval_s must be > 0", self.probe_interval_s)
        _require(0 < self.probe_timeout_s < self.probe_interval_s,
                 "probe_timeout_s must be > 0 and < probe_interval_s", self.probe_timeout_s)  # fmt: skip
        _require(self.indirect_checks >= 0, "indirect_checks must be >= 0", self.indirect_checks)
        _require(self.suspicion_mult >= 1, "suspicion_mult must be >= 1", self.suspicion_mult)
        _require(self.suspicion_max_timeout_mult >= 1, "suspicion_max_timeout_mult must be >= 1",
                 self.suspicion_max_timeout_mult)  # fmt: skip
        _require(self.retransmit_mult >= 1, "retransmit_mult must be >= 1", self.retransmit_mult)
        _require(self.gossip_interval_s > 0, "gossip_interval_s must be > 0", self.gossip_interval_s)
        _require(self.gossip_nodes >= 0, "gossip_nodes must be >= 0", self.gossip_nodes)
        _require(self.gossip_to_the_dead_s >= 0, "gossip_to_the_dead_s must be >= 0", self.gossip_to_the_dead_s)
        _require(self.push_pull_interval_s >= 0, "push_pull_interval_s must be >= 0 (0 = off)",
                 self.push_pull_interval_s)  # fmt: skip
        _require(self.push_pull_timeout_s > 0, "push_pull_timeout_s must be > 0", self.push_pull_timeout_s)
        _require(self.awareness_max_multiplier >= 1, "awareness_max_multiplier must be >= 1",
                 self.awareness_max_multiplier)  # fmt: skip
        _require(self.reconnect_interval_s >= 0, "reconnect_interval_s must be >= 0 (0 = off)",
                 self.reconnect_interval_s)  # fmt: skip
        _require(self.reap_after_s >= self.gossip_to_the_dead_s, "reap_after_s must be >= gossip_to_the_dead_s",
                 self.reap_after_s)  # fmt: skip
        _require(self.max_queued_updates >= 1, "max_queued_updates must be >= 1", self.max_queued_updates)
        _require(self.join_timeout_s >= 0, "join_timeout_s must be >= 0", self.join_timeout_s)
        _require(self.join_retry_initial_s > 0, "join_retry_initial_s must be > 0", self.join_retry_initial_s)
        _require(self.join_retry_max_s >= self.join_retry_initial_s,
                 "join_retry_max_s must be >= join_retry_initial_s", self.join_retry_max_s)  # fmt: skip

    @classmethod
    def lan(cls) -> GossipConfig:
        """memberlist's LAN defaults: 1 s probes, 0.5 s timeout, 3 indirect checks, 30 s push-pull."""
        return cls()

    @classmethod
    def local(cls) -> GossipConfig:
        """Loopback and tests: the same algorithm, about 5× quicker (memberlist's local profile, scaled)."""
        return cls(
            probe_interval_s=0.2,
            probe_timeout_s=0.1,
            gossip_interval_s=0.05,
            gossip_to_the_dead_s=6.0,
            push_pull_interval_s=3.0,
            push_pull_timeout_s=1.0,
            reconnect_interval_s=2.0,
            reap_after_s=600.0,
            join_timeout_s=10.0,
            join_retry_initial_s=0.1,
            join_retry_max_s=1.0,
        )


def _require(condition: bool, message: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{message}, got {value!r}")
