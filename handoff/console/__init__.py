"""The operator console: a web app (aiohttp, jinja2 pages, a small vanilla JS file, a WebSocket
for live updates) that App mounts at /console. See handoff/console/app.py for the routes
(`console_app`) and handoff/console/security.py for sessions, CSRF and the Content-Security-Policy.

Nothing is imported here: the modules import one another (`from handoff.console import api`),
the shared request state and keys live in state.py, and callers import from the module that
defines a name (`handoff.console.app.console_app`), so no import ever re-enters a package that
is still half-initialised.
"""
