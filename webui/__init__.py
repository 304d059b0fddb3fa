"""Web UI: read-only aiohttp routes, the page, JSON API, live events, Prometheus metrics.

(Built by the web UI issue.)
"""
