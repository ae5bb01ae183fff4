"""Channel frontends: aiogram (Telegram) and vkbottle (VK). They render and parse; nothing more."""
