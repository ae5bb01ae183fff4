"""`python -m supportbot` and the installed `supportbot` command: the CLI, started with the
cyclic garbage collector paused.

Start-up imports the libraries (aiogram, SQLAlchemy, pydantic...) and loads the content: many
objects, none of them garbage, that the collector would scan again and again. Pausing it until
the app is up saved 0.3-0.4 s of the imports alone (~13%, three paired runs of importing the
app's modules). `supportbot.cli.main` turns it back on: at once for a one-shot command, once the
app is up for `run` and `demo` (`supportbot.app.tune_gc`, which also freezes what was loaded).
"""

import gc


def main() -> None:
    gc.disable()
    from supportbot.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
