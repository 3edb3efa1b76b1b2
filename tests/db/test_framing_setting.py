"""The per-chat photo framing for Instagram: set from /settings like the other settings."""

from __future__ import annotations

from aiogram.methods import SendMessage

from bot.presentation.keyboards import SettingsCallback
from bot.presentation.texts import SETTING_ALREADY_SET, SETTING_SAVED

# The settings helpers and people of the command tests, shared.
from tests.db.test_commands import ADMIN, MEMBER, _changes, _settings_press
from tests.helpers.support import TestApp, fetch_all, say


async def _framing(app: TestApp) -> str:
    [chat] = await fetch_all(app.sessions, "SELECT photo_framing FROM chat_settings")
    return str(chat.photo_framing)


async def test_framing_defaults_to_blur_and_the_button_sets_the_next_one(app: TestApp) -> None:
    shown = await say(app, "/settings", who=ADMIN)
    assert "Instagram photo framing: on a blurred copy" in shown
    [reply] = app.telegram.of(SendMessage)[-1:]
    [button] = [b for row in reply.reply_markup.inline_keyboard for b in row if "Framing" in b.text]
    assert button.text == "🖼 Framing: blur"
    pressed = SettingsCallback.unpack(str(button.callback_data))

    assert await _settings_press(app, pressed.field, pressed.value) == SETTING_SAVED
    assert await _framing(app) == "solid"
    # The same (stale) button again: it SETS solid, which it already is.
    assert await _settings_press(app, pressed.field, pressed.value) == SETTING_ALREADY_SET
    assert await _changes(app) == [{"field": "photo_framing", "old": "blur", "new": "solid"}]


async def test_framing_by_command_and_its_refusals(app: TestApp) -> None:
    assert "centre-cropped" in await say(app, "/settings framing crop", who=ADMIN)
    assert await _framing(app) == "crop"
    assert "Framing is one of: as_is, blur, solid, crop" in await say(
        app, "/settings framing sideways", who=ADMIN
    )
    assert "Framing is one of" in (await _settings_press(app, "framing", 9) or "")
    assert "Only admins" in await say(app, "/settings framing as_is", who=MEMBER)
    assert await _framing(app) == "crop"
