"""The NLU improvement loop: editors review messages the NLU was unsure of or got wrong and assign the right intent; the example joins the training data and the engine retrains."""

from __future__ import annotations

from aiohttp import web


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app (names: pages plain, JSON `api:*`)."""
