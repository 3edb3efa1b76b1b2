"""The quiet edits: harmless refusals are not errors, others are logged, none is raised."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.methods import EditMessageCaption, EditMessageText
from structlog.testing import capture_logs

from bot.telegram import edit_by_id_quietly
from tests.helpers.fake_telegram_session import RecordingSession
from tests.helpers.support import TEAM_CHAT, TEST_TOKEN


def _refused(message: str) -> TelegramBadRequest:
    return TelegramBadRequest(method=EditMessageCaption(caption=""), message=message)


NO_CAPTION = _refused("Bad Request: there is no caption in the message to edit")
NOT_MODIFIED = _refused("Bad Request: message is not modified")
NOT_FOUND = _refused("Bad Request: message to edit not found")
OFFLINE = TelegramNetworkError(method=EditMessageCaption(caption=""), message="timeout")


@pytest.mark.parametrize(
    ("caption_error", "text_error", "edited", "methods", "logged"),
    [
        (None, None, True, ["caption"], []),
        (NOT_MODIFIED, None, True, ["caption"], []),
        (NOT_FOUND, None, False, ["caption"], ["Bad Request: message to edit not found"]),
        (OFFLINE, None, False, ["caption"], ["HTTP Client says - timeout"]),
        (NO_CAPTION, None, True, ["caption", "text"], []),
        (NO_CAPTION, NOT_MODIFIED, True, ["caption", "text"], []),
        (
            NO_CAPTION,
            NOT_FOUND,
            False,
            ["caption", "text"],
            ["Bad Request: message to edit not found"],
        ),
    ],
    ids=[
        "edited",
        "not-modified",
        "refused",
        "network",
        "text-fallback",
        "text-not-modified",
        "text-refused",
    ],
)
async def test_edit_by_id_quietly(
    caption_error: Exception | None,
    text_error: Exception | None,
    edited: bool,
    methods: list[str],
    logged: list[str],
) -> None:
    telegram = RecordingSession()
    if caption_error is not None:
        telegram.fail_next(EditMessageCaption, caption_error)
    if text_error is not None:
        telegram.fail_next(EditMessageText, text_error)
    bot = Bot(TEST_TOKEN, session=telegram)

    with capture_logs() as logs:
        result = await edit_by_id_quietly(bot, TEAM_CHAT, 500, "<b>x</b>", None)

    assert result is edited
    kinds = {EditMessageCaption: "caption", EditMessageText: "text"}
    assert [kinds[type(call)] for call in telegram.calls] == methods
    assert all((call.chat_id, call.message_id) == (TEAM_CHAT, 500) for call in telegram.calls)
    assert [e["reason"] for e in logs if e["event"] == "telegram.edit_failed"] == logged


async def test_a_known_text_is_edited_as_text() -> None:
    telegram = RecordingSession()
    bot = Bot(TEST_TOKEN, session=telegram)
    assert await edit_by_id_quietly(bot, TEAM_CHAT, 500, "x", None, is_text=True)
    assert [type(call) for call in telegram.calls] == [EditMessageText]
