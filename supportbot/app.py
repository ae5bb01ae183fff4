"""The composition root: builds the database, pipeline, frontends and outbox workers from settings.

`App.start()` migrates the schema, starts the HTTP server (webhooks, health), the Telegram and VK
frontends in the configured modes, and one outbox worker per channel; `App.stop()` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import gc
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bots.retry import RetryingHandler
from delivery.pacing import RateLimits, SharedLimits
from delivery.worker import OutboxWorker, WorkerSenders
from dialogs.engine import DialogEngine
from dialogs.messages import Channel
from dialogs.pipeline import ConversationService
from dialogs.reload import ReloadingContent
from dialogs.responder import Responder
from dialogs.versions import ContentVersions
from handoff import worker as handoff_worker
from handoff.console.app import console_app
from handoff.console.canned import seed_canned
from handoff.console.incidents_page import INCIDENTS
from handoff.console.studio_page import DraftChat, Studio
from handoff.console.training import REVIEW_MARGIN, Training
from handoff.console.uploads import UploadSender
from handoff.desk import Desk
from handoff.events import make_bus, redis_prefix
from handoff.queue import HandoffQueue
from handoff.rating import RatingResponder
from nlu import knowledge
from nlu.offload import Offload
from services.actions import flow_actions
from services.backend import Backend, load_backend
from services.backend.guard import Limits, guarded
from services.outages import Incidents, Rules
from services.privacy import Policy as RetentionPolicy
from services.privacy import retention_loop
from services.tickets import TicketError, resolve_ticket
from services.verification import Policy, Verifier
from storage import migrate, repo
from storage.db import Database
from storage.leases import Leases
from supportbot import logmask
from supportbot.channel_checks import ChannelChecks
from supportbot.metrics import Metrics
from supportbot.nlu_setup import ReloadingEngine
from supportbot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from handoff.telegram_group import TelegramGroup

log = logging.getLogger(__name__)
ContentTests = Callable[[Path], Awaitable[list[dict[str, Any]]]]
PROBE_TIMEOUT = 2.0  # seconds a health/readiness probe waits for the database
# Seconds a connection may sit without a complete request: idle between requests, and (aiohttp
# has no separate knob) the time a client has to send a request's headers. Above the 60 s that
# reverse proxies (nginx) keep idle upstream connections, so the app never closes one under a
# proxy's feet; far below aiohttp's default of an hour. Header size is bounded by aiohttp (8 KB
# a line, 128 headers); console bodies by handoff.console.app.BODY_TIMEOUT.
HTTP_IDLE_TIMEOUT = 75.0


class App:
    def __init__(self, settings: Settings, *, responder: Responder | None = None) -> None:
        logmask.install()  # phone numbers never reach the logs in clear (152-ФЗ)
        self.settings = settings
        self.db = Database(settings.database_url)
        self.workers: dict[Channel, OutboxWorker] = {}
        self.backend: Backend = guarded(
            load_backend(settings.backend),
            Limits(timeout=settings.backend_timeout, concurrency=settings.backend_concurrency),
        )
        self.content: ReloadingContent | None = None
        self.versions: ContentVersions | None = None  # content versions (the console studio)
        # Runs a content folder's conversation tests (supportbot/content_tests.py, set by whoever
        # starts the app: the storydriver builds an App itself); None: the studio cannot run them.
        self.content_tests: ContentTests | None = None
        self.draft_chats: DraftChat | None = None  # chats with a draft (content_tests.py)
        self.nlu: ReloadingEngine | None = None
        self._responder = responder
        # This deployment's Redis keys and channels start with it (SUPPORTBOT_HANDOFF__REDIS_PREFIX).
        self.redis_prefix = redis_prefix(settings.database_url, settings.handoff.redis_prefix)
        self.bus = make_bus(settings.handoff.redis_url, self.redis_prefix)
        # The unit of work's effects: after each commit, the live events go to the bus and
        # the channels written to wake their outbox workers, which get the new rows they take.
        senders = WorkerSenders(self.workers)
        self.db.on_commit(publish=self.bus.publish, wake=senders.wake, senders=senders)
        # Polling, Long Poll, the operator group and periodic jobs run in one process at a time.
        self.leases = Leases(self.db.url)
        self.service = ConversationService(self.db, _NotStarted())
        self.desk: Desk | None = None
        self.telegram_group: TelegramGroup | None = None
        self.web = web.Application()
        # Outage incidents: detected by the dialog engine, managed in the console and the CLI.
        self.incidents = Incidents(Rules(**settings.incidents.model_dump()), self.backend)
        # Who is verified, and how long it lasts (services/verification.py).
        self.verifier = Verifier(self.backend, Policy(**settings.verification.model_dump()))
        self.actions = flow_actions(self.backend, self.incidents, self.verifier)
        self.web[INCIDENTS] = self.incidents
        self.web.router.add_get("/healthz", self._health)
        self.web.router.add_get("/readyz", self._ready)
        self.metrics = Metrics(self.db, self.workers, settings.skill_groups)
        self.web.router.add_get("/metrics", self.metrics.handler)
        self.web.router.add_post("/api/tickets/{number}/resolve", self._resolve_ticket)
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.checks = ChannelChecks()  # tokens verified with the platforms (/readyz)
        self.url = f"http://{settings.http_host}:{settings.http_port}"

    def _shared_limits(self) -> SharedLimits | None:
        """Send limits shared through Redis by every process of this deployment, when there is
        a Redis (without one, a single process is assumed and its own limits are enough)."""
        url = self.settings.handoff.redis_url
        if not url:
            return None
        shared = SharedLimits(url, self.redis_prefix)
        self._closers.append(shared.close)
        return shared

    async def start(self) -> None:
        await migrate.upgrade(self.db)
        prepare = getattr(self.backend, "prepare", None)  # e.g. the demo seeds its subscribers
        if prepare is not None:
            await prepare(self.db)
        content_dir = await self._content_versions()
        assert self.versions is not None
        engine = await ReloadingEngine.start(self.settings, content_dir / "nlu")
        self.nlu = engine
        # Reading messages (the embedded parse, the knowledge-base search) on another core: the
        # helper starts in the background; until it is up, messages are read here.
        offload = None
        if self.settings.nlu.helper:
            offload = engine.offload = Offload()
            await offload.start()
            self._closers.append(offload.close)
        self.service.engine = self.metrics.timed(engine)  # NLU latency in /metrics
        self._spawn(engine.watch(), "nlu-reload")
        # The knowledge base's index is kept in the data dir: a restart loads it (~50 ms).
        knowledge.cache_on_disk(Path(self.settings.data_dir) / "kb-cache")
        self.content = ReloadingContent(
            content_dir,
            engine.intents,
            actions=self.actions,
            groups=self.settings.skill_groups,
        )
        queue = HandoffQueue(self.content, self.settings.handoff, groups=self.settings.skill_groups)
        self.service.responder = self._responder or DialogEngine(
            self.content,
            self.actions,
            threshold=self.settings.nlu.threshold,
            suggest_floor=self.settings.nlu.suggest_floor,
            escalator=queue,
            verifier=self.verifier,
            offload=offload,
        )
        self.service.rating = RatingResponder(self.content, nps=self.settings.handoff.nps)
        if isinstance(self.service.responder, DialogEngine):  # "продолжим здесь" notices
            self.service.notices = self.service.responder
        self._spawn(self.content.watch(), "dialogs-reload")
        if self.settings.content_store == "database":
            assert self.versions is not None
            following = self.versions.follow(self._switch_content, self.bus.subscribe())
            self._spawn(following, "content-versions")
        await self.bus.start()
        self.desk = Desk(
            self.db,
            queue,
            self.content,
            self.settings.handoff,
        )
        await seed_canned(self.db)
        self.web.add_subapp(
            "/console",
            console_app(
                db=self.db,
                desk=self.desk,
                bus=self.bus,
                content=self.content,
                settings=self.settings,
                training_setup=Training(
                    self.settings.content_dir / "nlu",
                    engine,
                    review_below=self.settings.nlu.threshold + REVIEW_MARGIN,
                ),
                studio=Studio(
                    self.versions,
                    run_tests=self._content_tests,
                    chats=lambda: self.draft_chats,
                    content_dir=self.settings.content_dir
                    if self.settings.content_store == "files"
                    else None,
                ),
            ),
        )
        handoff_loop = functools.partial(handoff_worker.run, self.desk, self.bus)
        self._spawn(self.leases.run("handoff queue", handoff_loop), "handoff")
        self._spawn(self.leases.run("retention", self._retention), "retention")
        # Routes must exist before the server starts; webhooks/polling only once it listens.
        go_live = [self._setup_telegram(), self._setup_vk()]
        for worker in self.workers.values():  # operator uploads from the database, any process
            worker.sender = UploadSender(worker.sender, self.db, self._uploads_dir())
        self._runner = web.AppRunner(self.web, access_log=None, keepalive_timeout=HTTP_IDLE_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        try:
            await site.start()
        except OSError as exc:  # not the database: this address can't be listened on
            raise ConfigError(
                _listen_error(self.settings.http_host, self.settings.http_port, exc)
            ) from exc
        port = self._runner.addresses[0][1] if self._runner.addresses else self.settings.http_port
        self.url = f"http://{self.settings.http_host}:{port}"
        for start_channel in go_live:
            if start_channel is not None:
                await start_channel()
        for worker in self.workers.values():
            self._spawn(worker.run(), f"outbox-{worker.channel}")
        log.info("supportbot listening on %s", self.url)
        log.info("%s", self._describe())

    async def _content_versions(self) -> Path:
        """The content folder to serve: content_dir itself (SUPPORTBOT_CONTENT_STORE=files; the
        studio's publishes are written into it), or the newest published version laid out under
        data_dir (database; seeded from content_dir when the database has none)."""
        cache = (Path(self.settings.data_dir) / "content-versions").resolve()
        groups = self.settings.skill_groups
        if self.settings.content_store == "files":
            self.versions = ContentVersions(
                self.db, self.actions, groups, cache, mirror=self.settings.content_dir
            )
            return self.settings.content_dir
        self.versions = ContentVersions(self.db, self.actions, groups, cache)
        live = await self.versions.seed(self.settings.content_dir)
        self.versions.live_id = live
        return await self.versions.layout(live)

    async def _content_tests(self, folder: Path) -> list[dict[str, Any]]:
        if self.content_tests is None:
            raise RuntimeError("conversation tests are not wired in this process")
        return await self.content_tests(folder)

    async def _switch_content(self, folder: Path) -> bool:
        """A newly published version: the NLU retrains if its data changed, then the dialogs."""
        assert self.nlu is not None and self.content is not None
        await self.nlu.switch(folder / "nlu")
        return await self.content.switch(folder)

    def _describe(self) -> str:
        """What this process runs on, secrets masked: the first thing to check when the bot
        answers from the wrong database or not at all."""
        cfg = self.settings
        channels = [
            f"telegram ({cfg.telegram.mode})" if cfg.telegram.token else None,
            f"vk ({cfg.vk.mode})" if cfg.vk.token else None,
        ]
        content = self.content.current if self.content is not None else None
        return "; ".join(
            [
                f"database {make_url(cfg.database_url).render_as_string(hide_password=True)}",
                f"events {_masked(cfg.handoff.redis_url)} (prefix {self.redis_prefix})"
                if cfg.handoff.redis_url
                else "events in-process",
                f"nlu {cfg.nlu.engine}"
                + (f" at {_masked(cfg.nlu.rasa_url)}" if cfg.nlu.engine == "rasa" else ""),
                "channels " + (", ".join(c for c in channels if c) or "none"),
                f"content {cfg.content_dir}"
                + (
                    f" ({len(content.flows)} flows, {len(content.articles)} articles)"
                    if content is not None
                    else ""
                ),
            ]
        )

    def _setup_telegram(self) -> Callable[[], Awaitable[None]] | None:
        cfg = self.settings.telegram
        if cfg.token is None:
            return None
        # Imported only when configured: aiogram builds ~300 pydantic models on import (~2 s).
        from bots import telegram as tg
        from handoff.telegram_group import TelegramGroup

        bot = tg.bot_for(cfg.token.get_secret_value(), cfg.api_base)
        # Polling confirms an update with the next fetch: hold it until it is stored.
        # Counted in /metrics; the channel and update id go on every log line meanwhile.
        inner = self.service if cfg.mode == "webhook" else RetryingHandler(self.service)
        handler = self.metrics.observe(inner)
        group_id = self.settings.handoff.telegram_group_id
        if group_id is not None:
            assert self.desk is not None  # start() builds the desk before the frontends
            self.telegram_group = TelegramGroup(
                self.db,
                self.desk,
                self.bus,
                bot,
                group_id,
                timezone=self.settings.handoff.timezone,
            )
        group = self.telegram_group
        dispatcher = tg.build_dispatcher(
            handler,
            group_handler=group.handle if group is not None else None,
            group_id=group_id,
        )
        limits = RateLimits(cfg.rate_per_chat, cfg.burst_per_chat, cfg.rate_overall)
        self.workers[Channel.TELEGRAM] = OutboxWorker(
            self.db, tg.TelegramSender(bot), limits, shared=self._shared_limits()
        )
        self._closers.append(bot.session.close)
        secret = cfg.webhook_secret.get_secret_value() if cfg.webhook_secret else None
        if cfg.mode == "webhook":
            self.web.router.add_post(
                "/webhook/telegram", tg.webhook_handler(dispatcher, bot, secret)
            )

        async def check() -> bool:
            try:
                return await tg.check_token(bot) is not None
            except tg.TokenRefused as exc:
                raise ConfigError(
                    f"SUPPORTBOT_TELEGRAM__TOKEN: Telegram refused the bot token ({exc})"
                ) from exc

        async def register_webhook() -> None:
            assert cfg.webhook_url is not None
            await tg.set_webhook(bot, cfg.webhook_url, secret, dispatcher=dispatcher)

        async def go_live() -> None:
            later = await self.checks.verify(
                "telegram",
                check,
                unreachable="telegram: the Bot API does not answer, the token is not verified "
                "yet (SUPPORTBOT_TELEGRAM__API_BASE)",
                then=register_webhook if cfg.mode == "webhook" else None,
            )
            if later is not None:
                self._spawn(later, "telegram-verify")
            if group is not None:  # listening (or standing by) before updates flow
                up = asyncio.Event()
                posting = functools.partial(group.run, up)
                role = self.leases.run("telegram operator group", posting, on_standby=up.set)
                self._spawn(role, "telegram-group")  # stopped before the bot closes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(up.wait(), 10)
            if cfg.mode == "polling":  # run_polling removes any webhook itself
                polling = functools.partial(tg.run_polling, dispatcher, bot)
                self._spawn(self.leases.run("telegram polling", polling), "telegram-polling")

        return go_live

    def _setup_vk(self) -> Callable[[], Awaitable[None]] | None:
        cfg = self.settings.vk
        if cfg.token is None or cfg.group_id is None:
            return None
        # Imported only when configured: vkbottle's generated types cost ~1 s to import.
        from bots import vk

        # Counted in /metrics; the channel and update id go on every log line meanwhile.
        inner = self.service if cfg.mode == "callback" else RetryingHandler(self.service)
        handler = self.metrics.observe(inner)
        bot = vk.build_bot(
            cfg.token.get_secret_value(),
            cfg.group_id,
            handler,
            api_url=cfg.api_url,
            state_dir=self.settings.data_dir,
        )
        # VK limits requests per token, not per chat: the per-chat bucket is no tighter.
        limits = RateLimits(cfg.rate_overall, 1, cfg.rate_overall)
        sender = vk.VKSender(bot.api)
        self.workers[Channel.VK] = OutboxWorker(
            self.db, sender, limits, shared=self._shared_limits()
        )
        self._closers.append(sender.close)
        if cfg.mode == "callback":
            assert cfg.confirmation_code is not None
            secret = cfg.secret.get_secret_value() if cfg.secret else None
            self.web.router.add_post(
                "/webhook/vk",
                vk.callback_handler(
                    bot,
                    confirmation_code=cfg.confirmation_code,
                    secret=secret,
                    group_id=cfg.group_id,
                ),
            )

        async def check() -> bool:
            try:
                return await vk.check_token(bot.api, cfg.group_id or 0)
            except vk.TokenRefused as exc:
                raise ConfigError(
                    f"SUPPORTBOT_VK__TOKEN / SUPPORTBOT_VK__GROUP_ID: VK refused them ({exc})"
                ) from exc

        async def go_live() -> None:
            later = await self.checks.verify(
                "vk",
                check,
                unreachable="vk: the VK API does not answer, the token is not verified yet "
                "(SUPPORTBOT_VK__API_URL)",
            )
            if later is not None:
                self._spawn(later, "vk-verify")
            if cfg.mode == "longpoll":
                long_poll = functools.partial(vk.run_long_poll, bot)
                self._spawn(self.leases.run("vk long poll", long_poll), "vk-long-poll")

        return go_live

    def _retention(self) -> Coroutine[Any, Any, None]:
        """Personal data older than SUPPORTBOT_RETENTION__* goes, once an interval
        (services/privacy/retention.py; safe with several processes)."""
        cfg = self.settings.retention
        policy = RetentionPolicy(cfg.messages, cfg.processed_updates, cfg.outbox, cfg.uploads)
        return retention_loop(self.db, policy, self._uploads_dir(), every=cfg.interval)

    def _uploads_dir(self) -> Path:
        """Where operator uploads' paths point (their bytes are in the database)."""
        return (Path(self.settings.data_dir) / "uploads").resolve()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def _health(self, _request: web.Request) -> web.Response:
        """Liveness plus what an integrator watches: undelivered replies and the NLU engine.
        The process is alive even when the database is not: then `database` says so (within
        `PROBE_TIMEOUT`), never a hang or a 500."""
        backlog = await self._outbox_backlog()
        engine = self.nlu
        return web.json_response(
            {
                "ok": True,
                "database": "ok" if backlog is not None else "unavailable",
                "channels": sorted(self.workers),
                "roles": sorted(self.leases.held),  # single-instance roles this process runs
                "outbox_pending": {ch: backlog.get(ch, 0) for ch in sorted(self.workers)}
                if backlog is not None
                else None,
                "nlu": engine.health() if isinstance(engine, ReloadingEngine) else None,
                "dialogs": self._dialogs_health(),
            }
        )

    async def _ready(self, _request: web.Request) -> web.Response:
        """Readiness (send traffic here?): the database answers, content is live and at least
        one channel runs; 503 with the reasons otherwise."""
        problems = []
        if await self._outbox_backlog() is None:
            problems.append("database: not answering (SUPPORTBOT_DATABASE_URL)")
        if self.content is None:
            problems.append("dialogs: no content loaded")
        if not self.workers:
            problems.append("channels: none running")
        problems += [self.checks.problems[ch] for ch in sorted(self.checks.problems)]
        body = {"ready": not problems, "problems": problems}
        return web.json_response(body, status=503 if problems else 200)

    async def _outbox_backlog(self) -> dict[str, int] | None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), self.db.session() as session:
                return await repo.outbox_backlog(session)
        except (TimeoutError, OSError, SQLAlchemyError) as exc:
            log.warning("health: the database is not answering: %s", exc)
            return None

    async def _resolve_ticket(self, request: web.Request) -> web.Response:
        """The CRM reports a ticket done: `POST /api/tickets/{number}/resolve {"result": "..."}`
        with `Authorization: Bearer <SUPPORTBOT_API_TOKEN>`; the subscriber is told the result."""
        token = self.settings.api_token
        if token is None:
            return web.json_response({"error": "the API is off (SUPPORTBOT_API_TOKEN)"}, status=404)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            return web.json_response({"error": "wrong or missing bearer token"}, status=401)
        try:
            body = await request.json()
            result = body["result"]
            if not isinstance(result, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {"error": 'body must be JSON {"result": "<text>"}'}, status=400
            )
        assert self.content is not None
        try:
            done = await resolve_ticket(
                self.db, self.content.current, request.match_info["number"], result
            )
        except TicketError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"number": done.number, "notified": done.channel})

    def _dialogs_health(self) -> dict[str, Any] | None:
        if self.content is None:
            return None
        report: dict[str, Any] = {"version": self.content.current.fingerprint}
        if self.versions is not None and self.versions.live_id is not None:
            report["content_version"] = self.versions.live_id  # the published version served
        if self.content.last_error:
            report["rejected_edit"] = self.content.last_error.splitlines()
        return report

    async def stop(self) -> None:
        close_chats = getattr(self.draft_chats, "close", None)
        if close_chats is not None:
            await close_chats()
        for worker in self.workers.values():
            await worker.stop()
        for task in self._tasks:
            if not task.get_name().startswith("outbox-"):
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.leases.close()  # the roles' jobs are stopped: a stand-by may take them
        if self._runner is not None:
            await self._runner.cleanup()
        for close in self._closers:
            await close()
        await self.bus.close()
        close_engine = getattr(self.service.engine, "close", None)  # the Rasa client's session
        if close_engine is not None:
            await close_engine()
        await self.metrics.close()
        await self.db.dispose()


class _NotStarted:
    async def respond(self, turn: object) -> list[Any]:
        raise RuntimeError("App.start() must run before messages are handled")


def tune_gc() -> None:
    """Once the app is up: move everything loaded so far (aiogram's and vkbottle's thousands of
    type objects) out of the collector's sight, and collect young objects less often. Measured
    with bench/pipeline.py: 187 -> 272 messages/s at saturation, p99 at 250 msg/s 2.1 s -> 0.2 s.
    Turns the collector back on when the start paused it (supportbot/__main__.py)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    gc.enable()


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())


def _listen_error(host: str, port: int, exc: OSError) -> str:
    """One line naming the setting to change when the HTTP server can't listen."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"SUPPORTBOT_HTTP_PORT: port {port} on {host} is busy (another process listens "
            "there); stop it or choose another port"
        )
    if exc.errno == errno.EACCES:
        return f"SUPPORTBOT_HTTP_PORT: not allowed to listen on port {port} (below 1024?)"
    return f"SUPPORTBOT_HTTP_HOST / SUPPORTBOT_HTTP_PORT: cannot listen on {host}:{port}: {exc}"


def _masked(url: str) -> str:
    """A URL with its password (if any) as ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy-style URL: drop any user info
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}"
