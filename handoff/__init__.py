"""Escalation to live operators: queue, routing, console (later issues)."""
