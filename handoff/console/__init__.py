"""The operator console: a web app (aiohttp, jinja2 pages, a small vanilla JS file, a WebSocket
for live updates) that App mounts at /console. See handoff/console/app.py for the routes and
handoff/console/security.py for sessions, CSRF and the Content-Security-Policy."""

from handoff.console.app import console_app
from handoff.console.canned import seed_canned

__all__ = ["console_app", "seed_canned"]
