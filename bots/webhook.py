"""Reading a webhook's JSON body safely: bounded size and nesting depth, a short reason otherwise.

A platform's update is a few kilobytes nested a few levels deep; anything far beyond that is a
mistake or an attack, answered 400/413 before it reaches a parser that could recurse too deep
(a RecursionError used to surface as a 500, which a platform also retries).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

MAX_BODY = 1024 * 1024  # bytes; a Telegram update or VK event is a few KB
MAX_DEPTH = 32  # nesting levels; real updates use fewer than 10


class BadBody(Exception):
    """The body is refused; `status` and the short reason go back to the caller."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


async def read_json(
    request: web.Request, *, max_bytes: int = MAX_BODY, max_depth: int = MAX_DEPTH
) -> Any:
    """The parsed body; BadBody if it is too large, not JSON, or nested deeper than `max_depth`."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BadBody(f"body over {max_bytes} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise BadBody(f"body over {max_bytes} bytes", 413)
        chunks.append(chunk)
    try:
        data = orjson.loads(b"".join(chunks))
    except ValueError as exc:  # orjson.JSONDecodeError, bad UTF-8 included
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1,024 levels
            raise BadBody("JSON nested too deeply") from None
        raise BadBody("body is not JSON") from None
    if _depth_over(data, max_depth):
        raise BadBody("JSON nested too deeply")
    return data


def _depth_over(data: Any, limit: int) -> bool:
    """Whether `data` nests more than `limit` containers deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
