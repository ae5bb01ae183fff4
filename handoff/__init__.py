"""Live operators: the queue (position, expected wait, working hours), the desk (assignment,
missed chats, transfer, return to the bot, close), CSAT/NPS, live events between processes,
service analytics, the operator console (console/) and the Telegram operator group."""
