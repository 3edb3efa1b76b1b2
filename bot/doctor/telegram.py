"""The doctor's Telegram checks: the token, the webhook, and the bot's rights in each chat."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramUnauthorizedError,
)
from aiogram.types import ChatFullInfo, User
from aiogram.utils.token import TokenValidationError

from bot.app import create_bot, telegram_session
from bot.config import Settings
from bot.doctor import timeouts
from bot.doctor.report import (
    Finding,
    Report,
    failed,
    passed,
    short,
    warned,
)


async def check_telegram(settings: Settings, report: Report) -> None:
    try:
        # No retrying middleware: the doctor reports a failure at once.
        session = telegram_session(settings, timeout=timeouts.network())
        bot = create_bot(settings, session, ride_out_errors=False)
    except TokenValidationError:
        report.add(
            failed(
                "telegram",
                "BOT_TOKEN is not a bot token",
                "copy it from @BotFather: it looks like 123456:ABC-DEF...",
            )
        )
        return
    try:
        me = await _telegram_identity(bot, report)
        if me is None:
            return
        report.add(await _webhook(bot, settings))
        for chat_id in settings.chat_ids:
            report.add(await check_chat(bot, me, chat_id))
    finally:
        await bot.session.close()


async def _telegram_identity(bot: Bot, report: Report) -> User | None:
    try:
        async with asyncio.timeout(timeouts.one_call()):
            me = await bot.get_me()
    except TelegramUnauthorizedError:
        report.add(
            failed(
                "telegram",
                "Telegram rejected BOT_TOKEN (401 Unauthorized)",
                "copy the token from @BotFather again (/mybots, API Token); it changes on revoke",
            )
        )
        return None
    except (TelegramAPIError, TimeoutError) as error:
        report.add(
            failed(
                "telegram",
                f"the Bot API did not answer ({short(error)})",
                "check the network (and TELEGRAM_API_URL if set), then run check again",
            )
        )
        return None
    report.add(passed("telegram", f"token works: @{me.username} (id {me.id})"))
    return me


async def _webhook(bot: Bot, settings: Settings) -> Finding:
    try:
        async with asyncio.timeout(timeouts.one_call()):
            info = await bot.get_webhook_info()
    except (TelegramAPIError, TimeoutError) as error:
        return failed("webhook", f"getWebhookInfo failed ({short(error)})", "run check again")
    if not info.url:
        return passed("webhook", "none set; the bot uses long polling")
    url = info.url
    if settings.bot_token is not None:
        url = url.replace(settings.bot_token.get_secret_value(), "[REDACTED]")
    return warned(
        "webhook",
        f"a webhook is set ({url}, {info.pending_update_count} update(s) waiting);"
        " `run` removes it at startup and keeps the waiting updates",
        "if another deployment still serves that webhook, stop it before `run`",
    )


_RIGHTS = {
    "can_send_messages": "send messages",
    "can_send_photos": "send photos",
    "can_send_videos": "send videos",
}


def missing_rights(chat: ChatFullInfo, member: Any) -> list[str] | None:
    """The rights the bot lacks in `chat` (empty: none), or None when it is not a member."""
    status = member.status
    if status in {ChatMemberStatus.LEFT, ChatMemberStatus.KICKED}:
        return None
    if status == ChatMemberStatus.RESTRICTED and not member.is_member:
        return None
    if chat.type == ChatType.CHANNEL:
        # In a channel only administrators post, and editing needs its own right.
        if status == ChatMemberStatus.CREATOR:
            return []
        if status != ChatMemberStatus.ADMINISTRATOR:
            return ["post messages", "edit its messages"]
        rights = {"can_post_messages": "post messages", "can_edit_messages": "edit its messages"}
        return [name for right, name in rights.items() if not getattr(member, right, False)]
    if status in {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR}:
        return []
    # In a group a member may edit its own messages; sending follows its restrictions,
    # or for a plain member the chat's default permissions.
    source = member if status == ChatMemberStatus.RESTRICTED else chat.permissions
    if source is None:
        return []
    return [name for right, name in _RIGHTS.items() if getattr(source, right, True) is False]


async def check_chat(bot: Bot, me: User, chat_id: int) -> Finding:
    """The bot is in the chat and may send photos, videos and messages and edit its own."""
    subject = f"chat {chat_id}"
    add_bot = f"add @{me.username} to the chat (and check TELEGRAM_CHAT_ID; groups start with -100)"
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            chat = await bot.get_chat(chat_id)
            member = await bot.get_chat_member(chat_id, me.id)
    except (TelegramBadRequest, TelegramForbiddenError) as error:
        return failed(subject, f"Telegram says: {error.message}", add_bot)
    except (TelegramAPIError, TimeoutError) as error:
        return failed(subject, f"could not ask Telegram ({short(error)})", "run check again")
    title = chat.title or chat.username or str(chat_id)
    missing = missing_rights(chat, member)
    if missing is None:
        return failed(subject, f"@{me.username} is not a member of “{title}”", add_bot)
    if missing:
        return failed(
            subject,
            f"@{me.username} cannot {', '.join(missing)} in “{title}”",
            "make the bot an administrator of the chat, or allow members these rights"
            " (chat settings, Permissions)",
        )
    return passed(
        subject,
        f"@{me.username} is {member.status} in “{title}”: can send photos and videos"
        " and edit its messages",
    )
