"""GossipConfig: memberlist's LAN defaults, the local profile, and validation."""

from __future__ import annotations

import dataclasses
import math

import pytest

from gossip.config import ConfigError, GossipConfig
from gossip.errors import GossipError


def test_lan_profile_is_memberlists_default_lan_config() -> None:
    """lan() carries memberlist's DefaultLANConfig values for every knob memberlist has."""
    config = GossipConfig.lan()
    assert config.probe_interval_s == 1.0
    assert config.probe_timeout_s == 0.5
    assert config.indirect_checks == 3
    assert config.suspicion_mult == 4
    assert config.suspicion_max_timeout_mult == 6
    assert config.retransmit_mult == 4
    assert config.gossip_interval_s == 0.2
    assert config.gossip_nodes == 3
    assert config.gossip_to_the_dead_s == 30.0
    assert config.push_pull_interval_s == 30.0
    assert config.push_pull_timeout_s == 10.0
    assert config.awareness_max_multiplier == 8
    assert config == GossipConfig()


def test_local_profile_is_quicker_with_the_same_algorithm() -> None:
    """local() shortens every period but keeps the algorithm's multipliers."""
    lan, local = GossipConfig.lan(), GossipConfig.local()
    assert local.probe_interval_s < lan.probe_interval_s
    assert local.probe_timeout_s < local.probe_interval_s
    assert local.gossip_interval_s < lan.gossip_interval_s
    assert local.push_pull_interval_s < lan.push_pull_interval_s
    assert (local.suspicion_mult, local.indirect_checks) == (lan.suspicion_mult, lan.indirect_checks)


def test_config_is_frozen_and_keyword_only() -> None:
    """A config cannot change after construction, and fields are named at the call site."""
    config = GossipConfig.lan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.probe_interval_s = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        GossipConfig(1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"probe_interval_s": 0.0}, "probe_interval_s"),
        ({"probe_timeout_s": 0.0}, "probe_timeout_s"),
        ({"probe_timeout_s": 1.0}, "probe_timeout_s"),  # not shorter than the interval
        ({"indirect_checks": -1}, "indirect_checks"),
        ({"suspicion_mult": 0}, "suspicion_mult"),
        ({"suspicion_max_timeout_mult": 0}, "suspicion_max_timeout_mult"),
        ({"retransmit_mult": 0}, "retransmit_mult"),
        ({"gossip_interval_s": 0.0}, "gossip_interval_s"),
        ({"gossip_nodes": -1}, "gossip_nodes"),
        ({"push_pull_interval_s": -1.0}, "push_pull_interval_s"),
        ({"push_pull_timeout_s": 0.0}, "push_pull_timeout_s"),
        ({"awareness_max_multiplier": 0}, "awareness_max_multiplier"),
        ({"reconnect_interval_s": -1.0}, "reconnect_interval_s"),
        ({"reap_after_s": 1.0}, "reap_after_s"),  # shorter than gossip to the dead
        ({"max_queued_updates": 0}, "max_queued_updates"),
        ({"join_retry_initial_s": 0.0}, "join_retry_initial_s"),
        ({"join_retry_max_s": 0.1}, "join_retry_max_s"),  # below the initial pause
        ({"probe_interval_s": math.inf}, "probe_interval_s"),
        ({"gossip_to_the_dead_s": math.nan}, "gossip_to_the_dead_s"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(changes: dict[str, float], field: str) -> None:
    """Every invalid value is refused at construction with a message naming the field."""
    with pytest.raises(ConfigError, match=field):
        GossipConfig(**changes)  # type: ignore[arg-type]


def test_config_error_is_a_gossip_error() -> None:
    """Callers catching GossipError also catch configuration mistakes."""
    assert issubclass(ConfigError, GossipError)


def test_zero_disables_optional_loops() -> None:
    """push-pull, reconnect and gossip loops may be turned off with 0."""
    config = GossipConfig(push_pull_interval_s=0.0, reconnect_interval_s=0.0, gossip_nodes=0, indirect_checks=0)
    assert config.push_pull_interval_s == 0.0
