"""Incidents for supervisors: open outages (detected or declared), declare and close them; closing tells the affected subscribers."""

from __future__ import annotations

from aiohttp import web


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (names: pages plain, JSON `api:*`)."""
