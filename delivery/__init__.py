"""Delivering stored replies to the platforms within their limits: the outbox worker."""
