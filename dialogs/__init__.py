"""The conversation turn: what happens between a subscriber's message and the bot's replies.

- `messages.py`: the channel-neutral `Inbound` / `Outbound` the frontends speak;
- `pipeline.py`: the one entry for every subscriber action (dedupe, store, decide, queue);
- `engine.py`: runs the content's flows (forms, misses, handoff, actions) for one turn;
- `content/` (loader and validator), `expr.py`, `slot_types/`, `reload.py`: the content language;
- `responses.py`: rendering responses; `outgoing.py`: the one writer of outgoing messages;
- `actions.py`: the flow-action registry's types (the actions themselves live in services/);
- `storytests.py`: conversation tests; `limits.py`: the platforms' limits.

It uses nlu/ and storage/ and nothing above them: services and handoff plug in through the
action registry and the `Escalator` protocol.
"""
