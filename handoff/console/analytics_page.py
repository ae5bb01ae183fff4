"""Service analytics for supervisors: the page with charts, its JSON and the CSV export (figures from handoff.analytics)."""

from __future__ import annotations

from aiohttp import web


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (names: pages plain, JSON `api:*`)."""
