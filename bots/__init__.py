"""Channel frontends: aiogram (Telegram, telegram.py) and vkbottle (VK, vk.py).

Each parses platform updates into `Inbound` for the pipeline, renders and sends `Outbound` (its
`ChannelSender` for the outbox worker in delivery/), and carries the receiving plumbing: webhook /
Callback API handlers, Telegram polling, VK Long Poll (retry.py keeps a pulled update until it is
stored). text.py cuts long texts to a channel's limit. What to reply is decided elsewhere.
"""
