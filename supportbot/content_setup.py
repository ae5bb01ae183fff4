"""The configured content for commands that run outside the app (`dialogs validate`, `tickets
resolve`, `incidents close`): the flow actions of the configured backend, and the content of
`content_dir` checked against them, the NLU's intents and the skill groups, as the app does."""

from __future__ import annotations

from pathlib import Path

from dialogs.actions import Actions
from dialogs.content import Content, load_content
from nlu.data import load_training_data
from services.actions import flow_actions
from services.backend import load_backend
from services.verification import Policy, Verifier
from supportbot.settings import Settings


def configured_actions(settings: Settings) -> Actions:
    """What flows can `call:` with the configured backend (`SUPPORTBOT_BACKEND`)."""
    backend = load_backend(settings.backend)
    policy = Policy(**settings.verification.model_dump())
    return flow_actions(backend, verifier=Verifier(backend, policy))


def configured_content(settings: Settings, content_dir: Path | None = None) -> Content:
    """Load and check the content; raises dialogs.yamlsrc.ContentError listing every problem."""
    root = content_dir or settings.content_dir
    return load_content(
        root,
        load_training_data([root / "nlu"]).intents,
        actions=configured_actions(settings),
        groups=settings.skill_groups,
    )
