"""The sandbox: a web page of the local demo where a person chats with both bots as a Telegram
subscriber and as a VK subscriber, side by side, and sees beside each answer the intent and
confidence it came from. It drives the emulators exactly as a messenger user would (texts,
button presses, a test photo or sticker) and reads what the bots sent back from the emulators'
records and the database, so every answer comes from the live, hot-reloaded app.

`supportbot demo` mounts it at /sandbox (see supportbot/demo.py). It has no login: it is meant
for the demo on 127.0.0.1 only. Routes: supportbot/sandbox/app.py."""

from supportbot.sandbox.app import sandbox_app

__all__ = ["sandbox_app"]
