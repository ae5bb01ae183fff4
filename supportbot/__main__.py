"""`python -m supportbot` runs the CLI."""

from supportbot.cli import main

main()
