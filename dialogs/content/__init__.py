"""The assistant's content: responses, slots and flows from `content/dialogs/*.yml`, checked and
compiled into small programs the dialog engine runs, and knowledge-base articles from
`content/knowledge/*.md`, indexed for retrieval.

`load_content(content_dir, intents, actions=...)` reads every file, reports every problem it finds as
`file:line:col: message` (ContentError) and returns an immutable `Content` only when there are
none; warnings (an unused response, a flow nothing leads to) ride along in `Content.warnings`.
The flow language itself is documented for editors in `content/README.md`.

The package's modules: `model` (the compiled, immutable model), `loader` (`load_content` and the
checks across files), `flows` (steps into programs), `responses`, `slots`, `knowledge` (articles), `limits` (the
platforms' limits, numbers from `dialogs.limits`), `actions` (what validation knows of the
flow-action registry: the slots each action needs, where its result goes)
and `state` (what the compiler's passes share). Everything other packages use is re-exported
here.
"""

from dialogs.content.actions import ActionTable
from dialogs.content.flows import STEP_EXTRAS, STEP_KEYS
from dialogs.content.knowledge import KNOWLEDGE_DIR
from dialogs.content.loader import DIALOGS_DIR, content_files, load_content
from dialogs.content.model import (
    BUILTIN_NAMES,
    CHANNELS,
    FLOW_PAYLOAD,
    INTENT_PAYLOAD,
    KB_PAYLOAD,
    NONE_OF_THESE,
    REMEMBERED_TYPES,
    RESERVED,
    SLOT_PAYLOAD,
    STEP_PAYLOAD,
    Article,
    ArticleText,
    Ask,
    BotSettings,
    ButtonSpec,
    Call,
    ChoicesFrom,
    Content,
    End,
    Flow,
    Handoff,
    Instr,
    Jump,
    JumpUnless,
    Lines,
    MakeTicket,
    Response,
    Route,
    Say,
    SetSlots,
    ShowArticle,
    SlotDef,
    StartFlow,
    UseFlow,
    Variant,
    Verify,
    command_key,
)

__all__ = [
    "BUILTIN_NAMES",
    "CHANNELS",
    "DIALOGS_DIR",
    "FLOW_PAYLOAD",
    "INTENT_PAYLOAD",
    "KB_PAYLOAD",
    "KNOWLEDGE_DIR",
    "NONE_OF_THESE",
    "REMEMBERED_TYPES",
    "RESERVED",
    "SLOT_PAYLOAD",
    "STEP_EXTRAS",
    "STEP_KEYS",
    "STEP_PAYLOAD",
    "ActionTable",
    "Article",
    "ArticleText",
    "Ask",
    "BotSettings",
    "ButtonSpec",
    "Call",
    "ChoicesFrom",
    "Content",
    "End",
    "Flow",
    "Handoff",
    "Instr",
    "Jump",
    "JumpUnless",
    "Lines",
    "MakeTicket",
    "Response",
    "Route",
    "Say",
    "SetSlots",
    "ShowArticle",
    "SlotDef",
    "StartFlow",
    "UseFlow",
    "Variant",
    "Verify",
    "command_key",
    "content_files",
    "load_content",
]
