"""Composition root: settings, CLI, and the wiring of bots, dialogs, nlu, handoff and storage."""
