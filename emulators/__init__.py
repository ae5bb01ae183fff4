"""Local Telegram Bot API and VK API servers (aiohttp) for tests, benchmarks and the sandbox.

Test and sandbox infrastructure, not frontends: the real clients (aiogram, vkbottle) cannot tell
them from the clouds. `telegram.TelegramEmulator` and `vk.VKEmulator` are the entry points. They
enforce the platforms' limits with their own copies of the numbers (telegram_objects.py,
vk_events.py), deliberately not dialogs/limits.py: they play the platform, so a test must fail
if the product's table and the platform disagree.
"""
