"""The composition root: settings, the CLI, and `App`, which wires storage, nlu, dialogs,
services, handoff, delivery and the bots into one process; plus the demo and its sandbox page."""
