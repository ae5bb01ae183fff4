"""The operators' Telegram group: every handed-off chat is a forum topic in one supergroup.

A second operator interface for small teams (the web console being the first). With
`SUPPORTBOT_HANDOFF__TELEGRAM_GROUP_ID` set to a forum supergroup where the bot is an admin:

- a chat that is queued gets a topic `#<id> <name> (<channel>) · <group>` and a context summary
  (who, channel, masked phone, why, recent intents, form data, the last messages with the bot's
  turns, open tickets); queued again (a transfer) it keeps its topic; back from the bot it gets
  its topic reopened with a fresh summary;
- what the subscriber writes while queued or with an operator is forwarded into the topic (`👤`);
- what a linked operator (Operator.telegram_user_id) writes in the topic goes to the subscriber
  through `Desk.reply` (the outbox, Telegram or VK); the first message takes a waiting chat;
- `/take`, `/close [resolution]`, `/bot` in the topic are the desk's take, close, return to bot;
  the outcome shows up in the topic as the desk's live events come back (so actions from the web
  console show there too), and closing or returning the chat closes the topic.

Live events only say "look again": each one re-reads the conversation from the database. They are
handled in order per conversation, each conversation in its own lane, so a slow or failing Bot API
call for one chat holds up no other and never the subscriber's handoff itself (that is committed
before any event is published). Posts into the group go straight to the Bot API (they are not
subscriber messages, so not the outbox) and honour 429 `retry_after`.

With several app processes one of them posts into the topics (the app runs it as a
single-instance role, storage/leases.py); any of them takes the operators' messages. Limits: what
the subscriber wrote while no process ran it is not forwarded (the next summary shows it); operator
replies made in the web console are not mirrored into the topic; an operator's photo is refused
(only text reaches the subscriber).
"""

from handoff.telegram_group.group import TelegramGroup

__all__ = ["TelegramGroup"]
