"""Local Telegram Bot API and VK API servers (aiohttp) for tests, benchmarks and the sandbox."""
