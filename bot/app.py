"""The composition root: settings in, a running bot out. Nothing here is global."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from bot.config import Settings
from bot.database import Database
from bot.handlers import fallback, queue
from bot.middlewares import LogContextMiddleware
from bot.services.press import PressService
from bot.services.tasks import TaskTracker

logger = structlog.get_logger(__name__)


def create_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    assert settings.bot_token is not None
    if session is None:
        session = AiohttpSession()
        if settings.telegram_api_url:
            session.api = TelegramAPIServer.from_base(settings.telegram_api_url, is_local=True)
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


@dataclass(frozen=True)
class Services:
    press: PressService
    tasks: TaskTracker


def build_services(database: Database) -> Services:
    return Services(press=PressService(database.sessions), tasks=TaskTracker())


def build_dispatcher(settings: Settings, database: Database, services: Services) -> Dispatcher:
    """Routers, middlewares and the dependencies handlers receive by name."""
    dispatcher = Dispatcher(
        settings=settings,
        sessions=database.sessions,
        press_service=services.press,
        tasks=services.tasks,
    )
    dispatcher.update.outer_middleware(LogContextMiddleware())
    dispatcher.include_routers(queue.create_router(), fallback.create_router())
    return dispatcher
