"""One page of a filtered list for the console's list pages (search, audit log, tickets): the
rows of the page asked for (clamped to the last), and the pager the `pager` macro of
`_macros.html` draws (page, pages, total, and the query strings of the neighbouring pages)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def paged(
    session: AsyncSession,
    found: Select[Any],
    order: Sequence[Any],
    *,
    page: int,
    size: int,
    params: Callable[[int], dict[str, str]],
) -> tuple[list[Any], dict[str, Any]]:
    """(the rows of page `page` of `found` in `order`, the pager); `params(n)` are the query
    parameters of page n (the filters kept)."""
    total = int(await session.scalar(select(func.count()).select_from(found.subquery())) or 0)
    pages = max(1, math.ceil(total / size))
    current = min(page, pages)
    rows = list(
        (
            await session.scalars(found.order_by(*order).offset((current - 1) * size).limit(size))
        ).all()
    )
    pager = {
        "page": current,
        "pages": pages,
        "total": total,
        "newer": urlencode(params(current - 1)) if current > 1 else None,
        "older": urlencode(params(current + 1)) if current < pages else None,
    }
    return rows, pager
