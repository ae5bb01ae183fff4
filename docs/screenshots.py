"""Takes the README's screenshots, so they always show the product as it is.

Runs `supportbot demo` on free ports, drives the sandbox and the operator console in Debian's
headless Chromium with Playwright, and writes:
- docs/img/sandbox.png: a Telegram subscriber asking how to pay, a VK subscriber checking their
  balance and asking for a human;
- docs/img/console.png: the operator console with that handed-off chat, taken and answered.

    .venv/bin/python docs/screenshots.py

Needs Debian's `chromium` (installed by `make test`) and, for emoji in the pictures,
`apt-get install fonts-noto-color-emoji`.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import tempfile
from pathlib import Path

from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    """A port with the next two free too (the demo uses port, port+1, port+2)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65000 and all(_free(port + i) for i in (1, 2)):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def say(page: Page, pane: str, text: str) -> None:
    await page.fill(f"#pane-{pane} input.text", text)
    await page.click(f"#pane-{pane} button.send")


async def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supportbot", "demo", "--port", str(port), "--data-dir", tmp,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert demo.stdout is not None
        while b"ready" not in await asyncio.wait_for(demo.stdout.readline(), 120):
            pass
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                page = await browser.new_page(viewport={"width": 1440, "height": 900})
                await page.goto(f"{url}/sandbox/")
                await say(page, "telegram", "где оплатить?")
                await page.locator("#pane-telegram").get_by_text("Оплатить связь").wait_for()
                await say(page, "vk", "какой у меня баланс?")
                await page.locator("#pane-vk").get_by_text("номер телефона").first.wait_for()
                await say(page, "vk", "8 911 000-00-01")
                await page.locator("#pane-vk").get_by_text("На счёте").wait_for()
                await say(page, "vk", "позовите оператора")
                await page.locator("#pane-vk").get_by_text("в очереди").wait_for()
                await page.wait_for_timeout(500)
                OUT.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(OUT / "sandbox.png"))

                console = await browser.new_page(viewport={"width": 1440, "height": 900})
                await console.goto(f"{url}/console/login")
                await console.fill("#login", "operator")
                await console.fill("#password", "operator-demo")
                await console.click("#login-submit")
                await console.wait_for_url(f"{url}/console/")
                await console.locator("#queue tbody tr a").first.click()
                await console.click("#take")
                await console.fill(
                    "#reply-text", "Здравствуйте! Я Анна, вижу вашу переписку с ботом 👋"
                )
                await console.click("#reply-send")
                await console.get_by_text("вижу вашу переписку").first.wait_for()
                await console.wait_for_timeout(500)
                await console.screenshot(path=str(OUT / "console.png"), full_page=True)
                await browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            await asyncio.wait_for(demo.wait(), 20)
    print(f"wrote {OUT / 'sandbox.png'} and {OUT / 'console.png'}")


if __name__ == "__main__":
    asyncio.run(main())
