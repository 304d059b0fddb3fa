"""Web UI: read-only aiohttp routes, the page and its static assets, JSON API, live events, Prometheus metrics."""

from __future__ import annotations

from webui.app import WebUIConfig, add_routes, create_app
from webui.view import (
    ConvergenceView,
    DiscoveryPoint,
    EntryObservations,
    EntryPage,
    EntryView,
    MemberView,
    NodeView,
    ObservationView,
    PartitionView,
)

__all__ = [
    "ConvergenceView",
    "DiscoveryPoint",
    "EntryObservations",
    "EntryPage",
    "EntryView",
    "MemberView",
    "NodeView",
    "ObservationView",
    "PartitionView",
    "WebUIConfig",
    "add_routes",
    "create_app",
]
