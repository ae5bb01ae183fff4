"""The business services behind the conversation: what the bot and the operators can *do*.

- `backend/`: the operator's billing/CRM interface, its flow actions and the demo backend;
- `verification.py`: verified identity before personal data (SMS codes, a shared contact, a
  code word; limits, no oracle); `audit.py`: the append-only audit log;
- `identity.py`: one person across Telegram and VK (linking by a one-time code);
- `outages/`: outage incidents: contacts counted per area, detected, declared, closed;
- `notify.py`: proactive messages, one per person, in the channel they use;
- `tickets.py`: tickets opened by flows, managed (status, move, cancel, comment), resolved with
  the subscriber told;
- `privacy/`: a person's data exported or erased on request, and retention;
- `actions.py`: all of their flow actions in one registry for the dialog engine.

Services use the conversation machinery (`dialogs/`: responses, the outgoing writer, the action
types) and storage; `dialogs/` never imports them: the composition root (`supportbot/`) wires
them in.
"""
