"""Constants and small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dialogs.content import load_content
from dialogs.engine import DialogEngine
from dialogs.responses import StaticContent
from nlu.data import load_training_data
from nlu.embedded import EmbeddedEngine
from services.actions import flow_actions
from services.backend.demo import DemoBackend
from services.outages import Incidents
from services.verification import Verifier

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"

# The intent names fixed by the NLU contract (shared/DESIGN.md).
CONTRACT_INTENTS = {
    "greet", "goodbye", "thanks", "affirm", "deny", "payment_methods", "balance",
    "promised_payment", "tariff_current", "tariff_list", "tariff_change", "internet_down",
    "tv_down", "technician_visit", "roaming", "sim_card", "number_porting", "call_details",
    "block_number", "offices", "connect_home", "complaint", "operator", "out_of_scope",
}  # fmt: skip


class TcpProxy:
    """A TCP forwarder we can cut and restore: the app sees its database go away and come back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        """Stop listening and drop every open connection (like a database restart)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._conns):
            writer.transport.abort()
        self._conns.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


# The flow actions of the reference services on the demo backend (what `supportbot demo` runs).
REFERENCE_ACTIONS = flow_actions(DemoBackend())

_NLU: list[EmbeddedEngine] = []


async def trained_nlu() -> EmbeddedEngine:
    """The embedded engine on content/nlu (trained once per test run; cached on disk too)."""
    if not _NLU:
        data = load_training_data([CONTENT / "nlu"])
        _NLU.append(await EmbeddedEngine.train(data, ROOT / "var" / "nlu-cache"))
    return _NLU[0]


def content_source() -> StaticContent:
    intents = load_training_data([CONTENT / "nlu"]).intents
    return StaticContent(load_content(CONTENT, intents, actions=REFERENCE_ACTIONS))


def dialog_engine(incidents: Incidents | None = None) -> DialogEngine:
    """The dialog engine on the reference content and the demo backend (seed it with
    `await DemoBackend().prepare(db)` where a test needs the demo subscribers); `incidents`:
    an outage desk with its own rules (default: the default rules)."""
    intents = load_training_data([CONTENT / "nlu"]).intents
    backend = incidents.backend if incidents is not None else DemoBackend()
    assert backend is not None
    verifier = Verifier(backend)
    actions = flow_actions(backend, incidents, verifier)
    content = StaticContent(load_content(CONTENT, intents, actions=actions))
    return DialogEngine(content, actions, verifier=verifier)
