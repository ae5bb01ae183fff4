"""The conversation turn: channel-neutral messages, the pipeline, and (later) flows from content."""
