"""Delivering stored replies to the platforms, within their limits: the outbox worker.

Replies wait in the outbox table (written by the pipeline in the same transaction as the turn);
`worker.OutboxWorker` claims them per chat in order and hands each to the channel's
`sender.ChannelSender` (implemented by the frontends in bots/), pacing every platform request
(`pacing`) and acting on the failure classes of `errors` (retry after, blocked, transient,
permanent, partly sent).

Dependency direction: bots -> delivery -> dialogs.messages, storage. Nothing here imports bots,
and this file re-exports nothing, so a frontend importing `delivery.errors` does not load the
worker and the database layer.
"""
