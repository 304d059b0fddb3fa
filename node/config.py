"""A node's configuration: one frozen value built by the CLI (or a test), validated here."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gossip.errors import TransportError
from gossip.http_transport import parse_address
from gossip.messages import MAX_ADDRESS_CHARS, MAX_NAME_CHARS
from node.budget import BudgetConfig
from node.errors import ConfigError
from node.estimate import StopRule
from node.evidence import VerificationPolicy
from node.llm.openai_config import OpenAIConfig
from node.producer import ProducerConfig
from partitioning.config import PartitionConfig

__all__ = ["NodeConfig", "LLMSettings", "check_plain_text"]

LLMKind = Literal["sim", "openai"]


MAX_RETENTION_DAYS = 36_500  # a century: longer is "for ever", which is 0


@dataclass(frozen=True, kw_only=True)
class LLMSettings:
    """Which LLM backend a node uses."""

    kind: LLMKind = "sim"  # "sim" = the built-in simulated LLM; "openai" = any OpenAI-compatible endpoint
    universe: str = "countries"  # the simulated LLM's real-data universe (kind "sim")
    rng_seed: int = 0  # the simulated LLM's seed: the same seed and calls give the same answers
    time_scale: float = 0.05  # simulated latency multiplier (1 = a real model's pace; 0 = instant)
    base_url: str | None = None  # OpenAI-compatible endpoint root incl. /v1 (kind "openai")
    model: str = "gpt-4o-mini"  # model name at that endpoint
    api_key: str | None = dataclasses.field(default=None, repr=False)  # None = OPENAI_API_KEY
    request_timeout_s: float = 60.0  # one attempt's bound

    def __post_init__(self) -> None:
        if self.kind not in ("sim", "openai"):
            raise ConfigError(f"llm must be 'sim' or 'openai', got {self.kind!r}")
        if not (math.isfinite(self.time_scale) and self.time_scale >= 0):  # nan/inf: calls never end
            raise ConfigError(f"sim time scale must be a finite number >= 0, got {self.time_scale}")
        if self.kind == "openai":
            # Checked now, naming the option, rather than when the node builds its backend.
            self.openai_config(concurrency=1)

    def openai_config(self, *, concurrency: int) -> OpenAIConfig:
        """The OpenAI backend's configuration (kind "openai"); ``ConfigError`` if invalid."""
        return OpenAIConfig(
            model=self.model,
            base_url=self.base_url,
            api_key=self.api_key,
            request_timeout_s=self.request_timeout_s,
            concurrency=concurrency,
        )


MIN_CLUSTER_KEY_BYTES = 16


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """Everything one node needs to run."""

    topic: str  # what to enumerate; stored in the data dir
    data_dir: Path  # state (SQLite) and list.jsonl
    node_name: str | None = None  # None = the name stored in the data dir, or <host>-<hex>
    llm: LLMSettings = field(default_factory=LLMSettings)
    producer: ProducerConfig = field(default_factory=ProducerConfig)
    stop: StopRule = field(default_factory=StopRule)  # when the topic counts as exhausted (no partitioning)
    partitioning: PartitionConfig = field(default_factory=PartitionConfig)  # the plan; off = whole topic
    # statuses and verification calls; every node of a cluster must use the same rules
    verification: VerificationPolicy = field(default_factory=VerificationPolicy)
    # the network's budget of LLM calls and tokens (a cluster setting: the strictest node's
    # holds) and this node's start rate (node.budget)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    host: str = "127.0.0.1"  # address the node's port binds (gossip, API, page)
    port: int = 7070  # the node's one port; 0 = any free port
    advertise: str | None = None  # host:port peers should use (default: the bound address)
    seeds: tuple[str, ...] = ()  # host:port of members to join through; none = start a cluster
    # A separate listener for the page and API (e.g. on localhost while gossip listens outside);
    # None = serve them on the gossip port. web_host is only used with a web_port.
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    cluster_key: bytes | None = field(default=None, repr=False)  # HMAC secret; None = open cluster
    gossip_profile: Literal["lan", "local"] = "lan"  # memberlist's LAN timings, or 5x quicker for loopback
    exit_when_done: bool = False  # exit 0 once exhausted or out of budget (else stay up, idle)
    list_debounce_s: float = 1.0  # list.jsonl is rewritten at most this often
    # what the model wrote per observation is dropped after this many days, its counts kept
    # (node.retention); 0 = keep it for ever
    observation_detail_days: float = 30.0

    def __post_init__(self) -> None:
        if not self.topic.strip():
            raise ConfigError("--topic must be non-empty")
        if len(self.topic) > 500:
            raise ConfigError("--topic must be at most 500 characters")
        check_plain_text("--topic", self.topic)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be within 0..65535, got {self.port}")
        if self.cluster_key is not None and len(self.cluster_key) < MIN_CLUSTER_KEY_BYTES:
            raise ConfigError(f"the cluster key must be at least {MIN_CLUSTER_KEY_BYTES} bytes")
        try:  # what getaddrinfo does to a host name; it fails with a traceback, not an OSError
            self.host.encode("idna")
        except UnicodeError as exc:
            raise ConfigError(f"--host {self.host[:80]!r} is not a host name or address: {exc}") from exc
        if self.cluster_key is None and not _is_loopback(self.host):
            raise ConfigError(
                f"refusing to bind {self.host} without a cluster key: anyone who can reach it could "
                "join the cluster. Pass --cluster-key-file (or SWARMLIST_CLUSTER_KEY), or bind 127.0.0.1"
            )
        if self.node_name is not None:  # gossip refuses a bad name, and the data dir would keep it
            if not 0 < len(self.node_name) <= MAX_NAME_CHARS:
                raise ConfigError(f"--name must be 1..{MAX_NAME_CHARS} characters, got {len(self.node_name)}")
            check_plain_text("--name", self.node_name)
        for seed in self.seeds:
            _check_address("--seed", seed)
        if self.web_port is not None and not 0 <= self.web_port <= 65535:
            raise ConfigError(f"--web-port must be within 0..65535, got {self.web_port}")
        try:
            self.web_host.encode("idna")
        except UnicodeError as exc:
            raise ConfigError(f"--web-host {self.web_host[:80]!r} is not a host name or address: {exc}") from exc
        if self.advertise is not None:
            _check_address("--advertise", self.advertise)
        if not (math.isfinite(self.observation_detail_days) and 0 <= self.observation_detail_days <= MAX_RETENTION_DAYS):
            raise ConfigError(f"--observation-detail-days must be a number of days in [0, {MAX_RETENTION_DAYS}] "
                              f"(0 = keep for ever), got {self.observation_detail_days}")  # fmt: skip
        if self.list_debounce_s < 0:
            raise ConfigError("list_debounce_s must be >= 0")


def check_plain_text(option: str, value: str) -> None:
    """``ConfigError`` unless ``value`` is text a node can store, log and send.

    Refused: control characters, and lone surrogates — what Python makes of bytes that were
    not UTF-8 in argv or an environment variable, which SQLite and every encoder refuse later.
    """
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ConfigError(f"{option} is not valid UTF-8 text")
        if category == "Cc":
            raise ConfigError(f"{option} must not hold control characters, got {value[:40]!r}")


def _check_address(option: str, address: str) -> None:
    """``address`` is a ``host:port`` the gossip transport accepts (hostname, IPv4, [IPv6])."""
    try:
        if len(address) > MAX_ADDRESS_CHARS:
            raise TransportError(f"longer than {MAX_ADDRESS_CHARS} characters")
        parse_address(address)
    except TransportError as exc:
        raise ConfigError(f"{option} must be host:port (hostname, IPv4 or [IPv6]), got {address[:80]!r}") from exc
