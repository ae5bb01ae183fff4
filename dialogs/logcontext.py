"""What the log line being written is about: the channel, platform update and conversation.

Context variables, so every line logged while one update is handled carries them, whoever logs
it: the composition root sets the channel and update id where an update enters the pipeline
(supportbot/metrics.py, `ObservedHandler`), the pipeline sets the conversation id once it has
found the conversation. The JSON log format (supportbot/logs.py) writes them as fields.
"""

from __future__ import annotations

from contextvars import ContextVar

channel: ContextVar[str | None] = ContextVar("supportbot_channel", default=None)
update_id: ContextVar[str | None] = ContextVar("supportbot_update_id", default=None)
conversation_id: ContextVar[int | None] = ContextVar("supportbot_conversation_id", default=None)
