"""The business services behind the conversation: what the bot and the operators can *do*.

- `backend/`: the operator's billing/CRM interface, its flow actions and the demo backend;
- `identity.py`: one person across Telegram and VK (linking by a one-time code);
- `outages.py`: outage incidents: contacts counted per area, detected, declared, closed;
- `notify.py`: proactive messages, one per person, in the channel they use;
- `tickets.py`: tickets opened by flows and resolved with the subscriber told;
- `actions.py`: all of their flow actions in one registry for the dialog engine.

Services use the conversation machinery (`dialogs/`: responses, the outgoing writer, the action
types) and storage; `dialogs/` never imports them: the composition root (`supportbot/`) wires
them in.
"""
