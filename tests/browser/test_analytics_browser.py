"""The analytics page through the real console (the App with the Telegram and VK emulators, on
SQLite), on the hand-computed fixture of tests/handoff/test_analytics.py: roles, the JSON, the
CSV against the report, bad parameters; then in headless Chromium: the charts are drawn and the
filter form works."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from handoff.console.analytics_page import COLUMNS, HEADER, NO_GROUP_LABEL
from storage.models import utcnow
from tests.browser.conftest import Client, Console, log_in
from tests.handoff.test_analytics import MSK, report, seed

PERIOD = "?from=2026-11-20&to=2026-11-22"


async def people(console: Console, clients: Any) -> tuple[Client, Client, Client]:
    await console.operator("sveta", role="supervisor", groups=())
    await console.operator("olga", groups=("consult",))
    await console.operator("egor", role="editor", groups=())
    logged = []
    for login in ("sveta", "olga", "egor"):
        client: Client = clients()
        assert (await client.log_in(login)).status == 303
        logged.append(client)
    return logged[0], logged[1], logged[2]


async def test_json_csv_and_roles(console: Console, clients: Any) -> None:
    await seed(console.app.db)
    sveta, olga, egor = await people(console, clients)

    for client in (olga, egor):  # operators and editors: 403 everywhere
        status, html = await client.get(f"/analytics{PERIOD}")
        assert status == 403 and "для супервизоров" in html
        assert await client.get(f"/api/analytics{PERIOD}") == (
            403,
            {"error": "Только для супервизоров."},
        )
        assert (await client.get(f"/analytics.csv{PERIOD}"))[0] == 403

    expected = await report(console.app.db)
    status, data = await sveta.get(f"/api/analytics{PERIOD}")
    assert status == 200 and data == expected.to_json()
    assert data["totals"]["containment_pct"] == 62.5 and data["totals"]["nps"] == 33.3
    assert data["top_intents"][0] == {"intent": "payment_methods", "count": 3}
    assert len(data["rows"]) == 11 and len(data["days"]) == 3

    async with sveta.http.get(f"{console.url}/analytics.csv{PERIOD}") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv" and resp.charset == "utf-8"
        assert (
            resp.headers["Content-Disposition"]
            == 'attachment; filename="analytics_2026-11-20_2026-11-22.csv"'
        )
        raw = await resp.read()
    assert raw.startswith(codecs.BOM_UTF8)  # Excel reads it as UTF-8 (Cyrillic headers)
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == HEADER
    assert len(table) - 1 == len(expected.rows)
    for line, row in zip(table[1:], expected.rows, strict=True):
        assert line[:3] == [row.day.isoformat(), row.channel, row.group or NO_GROUP_LABEL]
        for (name, get), cell in zip(COLUMNS, line[3:], strict=True):
            value = get(row.figures)
            assert cell == ("" if value is None else str(value).replace(".", ",")), name
    by_key = {
        (line[0], line[1], line[2]): dict(zip(HEADER, line, strict=True)) for line in table[1:]
    }
    c2 = by_key[("2026-11-20", "telegram", "consult")]
    assert (c2["Средний первый ответ, с"], c2["Своевременный первый ответ, %"]) == ("40,0", "100,0")
    assert by_key[("2026-11-20", "vk", NO_GROUP_LABEL)]["Доля непонятых, %"] == "100,0"
    assert sum(int(line[3]) for line in table[1:]) == 8  # contacts, as in the totals

    # filters
    status, data = await sveta.get(f"/api/analytics{PERIOD}&channel=vk&group=tech")
    assert status == 200 and [(r["day"], r["channel"], r["group"]) for r in data["rows"]] == [
        ("2026-11-20", "vk", "tech")
    ]
    assert data["filters"] == {"channel": "vk", "group": "tech"}
    status, data = await sveta.get(f"/api/analytics{PERIOD}&group=none")
    assert status == 200 and data["totals"]["containment_pct"] == 100.0
    # the default: the last 14 days in Moscow
    status, data = await sveta.get("/api/analytics")
    today = utcnow().astimezone(MSK).date()
    assert status == 200
    assert data["period"]["to"] == today.isoformat()
    assert data["period"]["from"] == (today - timedelta(days=13)).isoformat()

    # bad parameters: a 400 that names the parameter, never a traceback
    for query, words in (
        ("?from=2026-13-01", "«from»"),
        ("?to=yesterday", "«to»"),
        ("?from=2026-11-22&to=2026-11-20", "позже"),
        ("?from=2025-01-01&to=2026-11-20", "366"),
        ("?channel=whatsapp", "«channel»"),
        ("?group=sales", "«group»"),
    ):
        status, body = await sveta.get(f"/api/analytics{query}")
        assert status == 400 and words in body["error"], query
        status, html = await sveta.get(f"/analytics{query}")
        assert status == 400 and 'id="an-error"' in html and 'id="an-filter"' in html, query
        assert "Traceback" not in html
        assert (await sveta.get(f"/analytics.csv{query}"))[0] == 400


async def test_the_page(console: Console, clients: Any) -> None:
    await seed(console.app.db)
    sveta, _, _ = await people(console, clients)
    status, html = await sveta.get(f"/analytics{PERIOD}&channel=telegram")
    assert status == 200
    assert 'id="chart-contacts"' in html and 'id="chart-quality"' in html
    assert 'id="chart-intents"' in html and 'id="chart-reasons"' in html
    assert "style=" not in html and "<script>" not in html  # the CSP allows neither
    assert "Как считается" in html and "Удержание" in html
    assert '<option value="telegram" selected>' in html
    assert (
        'href="/console/analytics.csv?from=2026-11-20&amp;to=2026-11-22&amp;channel=telegram'
        in html
    )
    # Telegram: 5 contacts, 3 contained = 60 %; texts 8, 1 miss = 12.5 %
    assert '<dd id="an-containment">60.0 %</dd>' in html
    assert '<dd id="an-fallback">12.5 %</dd>' in html
    assert "хочу котика" in html and "фывапр" not in html  # C3's misses were in VK


@pytest.mark.browser
async def test_charts_render_and_the_filter_works(console: Console, page: Any) -> None:
    await seed(console.app.db)
    await console.operator("sveta", role="supervisor", groups=())
    refused: list[str] = []  # a CSP violation is a console error
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    await log_in(page, console, "sveta")
    await page.click("nav a:has-text('Аналитика')")
    await page.wait_for_url(f"{console.url}/analytics")
    today = utcnow().astimezone(MSK).date()
    await expect(page.locator("input[name=to]")).to_have_value(today.isoformat())

    await page.fill("input[name=from]", "2026-11-20")
    await page.fill("input[name=to]", "2026-11-22")
    await page.click("#an-apply")
    await page.wait_for_url("**/analytics?from=2026-11-20&to=2026-11-22*")
    await expect(page.locator("#an-containment")).to_have_text("62.5 %")
    # contained: C1 (20th), C1 + C4 (21st), C6 twice (22nd); handed off: C2, C3 (20th), C5 (21st)
    await expect(page.locator("#chart-contacts rect.bar-bot")).to_have_count(3)
    await expect(page.locator("#chart-contacts rect.bar-op")).to_have_count(2)
    await expect(page.locator("#chart-contacts polyline.line-containment")).to_have_count(1)
    await expect(page.locator("#chart-intents rect")).to_have_count(5)
    await expect(page.locator("#chart-reasons text").first).to_contain_text("asked for a human")
    box = await page.locator("#chart-contacts").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 80
    fill = await page.locator("#chart-contacts rect.bar-bot").first.evaluate(
        "el => getComputedStyle(el).fill"
    )
    assert fill == "rgb(31, 157, 85)"  # analytics.css applied: the stylesheet is allowed

    await page.select_option("select[name=channel]", "vk")
    await page.click("#an-apply")
    await page.wait_for_url("**channel=vk*")
    await expect(page.locator("#an-containment")).to_have_text("66.7 %")
    await expect(page.locator("#an-fallback")).to_have_text("50.0 %")
    await expect(page.locator("select[name=channel]")).to_have_value("vk")
    await expect(page.locator("#an-channels tbody tr")).to_have_count(1)

    async with page.expect_download() as download:
        await page.click("#an-csv")
    assert (await download.value).suggested_filename == "analytics_2026-11-20_2026-11-22.csv"
    assert refused == []
