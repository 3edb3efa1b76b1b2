"""The composition root: settings in, a running bot out. Nothing here is global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta

import httpx
import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from bot.config import Settings, parse_store_url
from bot.database import Database
from bot.handlers import (
    admin,
    chats,
    commands,
    errors,
    fallback,
    inflight,
    instagram,
    membership,
    queue,
)
from bot.limits import TextLimitsMiddleware
from bot.middlewares import (
    ChatGateMiddleware,
    InteractionLogMiddleware,
    LogContextMiddleware,
    RunToCompletionMiddleware,
)
from bot.presentation.autopost_board import TelegramAutoPostBoard
from bot.presentation.notices import Notices
from bot.presentation.notifier import TelegramNotifier
from bot.presentation.texts import expiry_warning
from bot.send_budget import SendBudget, SendBudgetMiddleware
from bot.services.accounts.care import TokenCare
from bot.services.accounts.clients import InstagramAccounts
from bot.services.accounts.config import load_account_configs
from bot.services.admins import AdminDirectory
from bot.services.autopost import AutoPostService, autopost_lease
from bot.services.chats import ChatDirectory
from bot.services.clock import Clock, utc_now
from bot.services.delivery import Delivery
from bot.services.inflight import InFlightService
from bot.services.instagram import create_http_client
from bot.services.media_host import (
    MediaHost,
    Prepare,
    PreparedFolder,
    S3Store,
    create_s3_client,
    original_unchanged,
    prepared_by,
    served_as_is,
)
from bot.services.media_prep import MediaPreparer, prepared_dir
from bot.services.press import PressService
from bot.services.runway import RunwayWatch
from bot.services.scheduler import ChatBackoff, Scheduler
from bot.services.story_results import StoryResultsCare
from bot.services.tasks import TaskTracker
from bot.services.team import TeamService
from bot.telegram_retry import TelegramRetryMiddleware

logger = structlog.get_logger(__name__)


def build_media_host(settings: Settings, prepare: Prepare | None) -> MediaHost | None:
    """The store (MEDIA_PUBLIC_STORE) or the served folder (MEDIA_PUBLIC_BASE_URL), if either.

    Without a `prepare` (media preparation), the original files go as they are.
    """
    if settings.media_public_store:
        store = S3Store(create_s3_client(), parse_store_url(settings.media_public_store))
        return MediaHost(store, settings.media_dir, prepare or original_unchanged)
    if settings.media_public_base_url:
        folder = PreparedFolder(settings.media_dir, settings.media_public_base_url)
        return MediaHost(folder, settings.media_dir, prepare or served_as_is)
    return None


def telegram_session(settings: Settings, *, timeout: float | None = None) -> AiohttpSession:
    """An HTTP session to the Bot API (or the local server at TELEGRAM_API_URL)."""
    session = AiohttpSession() if timeout is None else AiohttpSession(timeout=timeout)
    if settings.telegram_api_url:
        session.api = TelegramAPIServer.from_base(settings.telegram_api_url, is_local=True)
    return session


def create_bot(
    settings: Settings,
    session: BaseSession | None = None,
    *,
    ride_out_errors: bool = True,
    budget: SendBudget | None = None,
) -> Bot:
    """The bot; `ride_out_errors` adds the retrying request middleware (off for `check`).

    Every text is kept within Telegram's limits on the way out (`bot.limits`).
    With a `budget`, every message waits its turn inside Telegram's rate limits; it
    is registered after the retrying middleware, so each repeat spends from it again.
    """
    assert settings.bot_token is not None
    if session is None:
        session = telegram_session(settings)
    session.middleware(TextLimitsMiddleware())
    if ride_out_errors:
        session.middleware(TelegramRetryMiddleware())
    if budget is not None:
        session.middleware(SendBudgetMiddleware(budget))
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


@dataclass(frozen=True)
class Services:
    """The services, each also a name handlers receive it by (`workflow_data`)."""

    press: PressService
    tasks: TaskTracker
    scheduler: Scheduler
    team: TeamService
    admins: AdminDirectory
    instagram_accounts: InstagramAccounts
    token_care: TokenCare
    chat_directory: ChatDirectory
    inflight: InFlightService
    story_results: StoryResultsCare
    runway: RunwayWatch
    send_budget: SendBudget
    autopost: AutoPostService | None = None
    http: httpx.AsyncClient | None = None
    clock: Clock = utc_now

    def workflow_data(self) -> dict[str, object]:
        """What handlers receive by name: each field under its own name (the one declaration)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    async def close(self) -> None:
        """Close the outbound HTTP client (the bot's session is the runner's)."""
        if self.http is not None:
            await self.http.aclose()


def build_services(
    settings: Settings,
    database: Database,
    bot: Bot,
    *,
    clock: Clock = utc_now,
    on_secret: Callable[[str], None] = lambda secret: None,
    send_budget: SendBudget | None = None,
    prepare: Prepare | None = None,
) -> Services:
    """`on_secret` learns every Instagram token in use, refreshed ones included (log redaction)."""
    configs = load_account_configs(settings)
    http = create_http_client() if configs else None
    accounts = InstagramAccounts(
        database.sessions,
        http,
        configs,
        media_public_base_url=settings.media_public_location,
        clock=clock,
        publish_timeout_seconds=settings.instagram_publish_timeout_seconds,
        poll_interval_seconds=settings.instagram_poll_interval_seconds,
        on_token=on_secret,
    )
    notifier = TelegramNotifier(bot, settings.media_dir, instagram=accounts.autopost_available)
    notices = Notices()
    chat_directory = ChatDirectory(
        database.sessions, settings.chat_ids, on_move=[accounts.follow_chat], notices=notices
    )

    async def follow_migration(old_chat_id: int, new_chat_id: int) -> int | None:
        return await chat_directory.follow(old_chat_id, new_chat_id, bot)

    delivery = Delivery(
        database.sessions,
        notifier,
        stuck_after=timedelta(seconds=settings.send_stuck_after_seconds),
        follow_migration=follow_migration,
    )
    scheduler = Scheduler(
        database.sessions,
        delivery,
        # A chat that refuses the bot is first skipped for one tick.
        chat_backoff=ChatBackoff(first_seconds=max(settings.scheduler_interval_seconds, 1.0)),
        data_dir=settings.data_dir,
        interval_seconds=settings.scheduler_interval_seconds,
        clock=clock,
        concurrency=settings.scheduler_concurrency,
        chat_ids=chat_directory.served,
    )
    press = PressService(database.sessions)
    autopost = None
    if prepare is None and settings.media_preparation:
        prepare = prepared_by(MediaPreparer(prepared_dir(settings.media_dir)))
    media_host = build_media_host(settings, prepare)
    if configs and media_host is not None:
        autopost = AutoPostService(
            database.sessions,
            press,
            accounts,
            media_host,
            TelegramAutoPostBoard(bot, accounts.autopost_available),
            clock=clock,
            lease=autopost_lease(settings.instagram_publish_timeout_seconds),
            sweep_interval_seconds=settings.autopost_sweep_interval_seconds,
            recheck_after_seconds=settings.instagram_poll_interval_seconds,
        )
    return Services(
        press=press,
        tasks=TaskTracker(),
        scheduler=scheduler,
        team=TeamService(database.sessions),
        admins=AdminDirectory(bot, settings.admin_user_ids),
        instagram_accounts=accounts,
        token_care=TokenCare(
            database.sessions,
            accounts,
            bot,
            clock=clock,
            render_warning=expiry_warning,
            interval_seconds=settings.instagram_care_interval_seconds,
            follow_migration=follow_migration,
        ),
        chat_directory=chat_directory,
        inflight=InFlightService(database.sessions, delivery, clock=clock),
        story_results=StoryResultsCare(
            database.sessions,
            accounts,
            clock=clock,
            interval_seconds=settings.story_results_interval_seconds,
        ),
        runway=RunwayWatch(
            database.sessions,
            bot,
            clock=clock,
            chat_directory=chat_directory,
            notices=notices,
            interval_seconds=settings.runway_check_interval_seconds,
            follow_migration=follow_migration,
        ),
        send_budget=send_budget or SendBudget(),
        autopost=autopost,
        http=http,
        clock=clock,
    )


def build_dispatcher(settings: Settings, database: Database, services: Services) -> Dispatcher:
    """Routers, middlewares and the dependencies handlers receive by name."""
    dispatcher = Dispatcher(settings=settings, sessions=database.sessions)
    dispatcher.workflow_data.update(services.workflow_data())
    dispatcher.update.outer_middleware(LogContextMiddleware())
    # One gate for every router, run once a handler matched (see ChatGateMiddleware);
    # then each command that passed it is logged. Admin-ness is the admin router's
    # IsAdmin filter (bot.filters). Dispatcher middlewares run in registration order,
    # before any router's: the shield comes last, so refusals are never shielded.
    gate = ChatGateMiddleware()
    shield = RunToCompletionMiddleware()
    dispatcher.message.middleware(gate)
    dispatcher.callback_query.middleware(gate)
    dispatcher.message.middleware(InteractionLogMiddleware())
    dispatcher.message.middleware(shield)
    dispatcher.callback_query.middleware(shield)
    dispatcher.include_routers(
        chats.create_router(),
        queue.create_router(),
        commands.create_router(),
        instagram.create_router(),
        admin.create_router(),
        membership.create_router(),
        inflight.create_router(),
        fallback.create_router(),
        errors.create_router(),
    )
    return dispatcher


@dataclass(frozen=True)
class App:
    """The bot, its services and the dispatcher, wired together."""

    bot: Bot
    services: Services
    dispatcher: Dispatcher


def build_app(
    settings: Settings,
    database: Database,
    *,
    session: BaseSession | None = None,
    clock: Clock = utc_now,
    on_secret: Callable[[str], None] = lambda secret: None,
) -> App:
    """The one place the bot, services and dispatcher are built (runner, tests, benchmarks)."""
    budget = SendBudget()
    bot = create_bot(settings, session, budget=budget)
    services = build_services(
        settings, database, bot, clock=clock, on_secret=on_secret, send_budget=budget
    )
    dispatcher = build_dispatcher(settings, database, services)
    return App(bot=bot, services=services, dispatcher=dispatcher)
