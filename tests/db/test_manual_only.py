"""Items index found Instagram would refuse: no 🤖 button, /queue marks them, old buttons say why."""

from __future__ import annotations

import uuid

import respx
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    SendMessage,
    SendPhoto,
    SendVideo,
)

from bot.presentation.captions import notification_caption
from bot.presentation.keyboards import QueueAction
from bot.presentation.notifier import TelegramNotifier
from bot.services.notifier import ClaimedItem
from db.models import MediaItem
from tests.db.test_autopost import (  # noqa: F401
    _queue_status,
    graph,
    settings,
)
from tests.helpers.fake_telegram_session import command_update
from tests.helpers.support import ALICE, TEAM_CHAT, TestApp, fetch_all, seed_media, seed_queue_item

# Instagram configured for the team chat, and the Graph mock, shared.
from tests.helpers.support import press_update as _press_update

REASON = "video 75 s: over the 60 s Story limit"


async def _manual_only_item(app: TestApp) -> tuple[uuid.UUID, uuid.UUID]:
    [media_id] = await seed_media(
        app.sessions, media_kind="video", mime_type="video/mp4", autopost_refusal=REASON
    )
    return media_id, await seed_queue_item(app.sessions, media_id)


def _labels(markup: object) -> list[str]:
    return [button.text for row in markup.inline_keyboard for button in row]  # type: ignore[attr-defined]


async def test_its_message_has_no_robot_button_and_the_caption_says_why(app: TestApp) -> None:
    media_id, queue_id = await _manual_only_item(app)
    [fine_id] = await seed_media(app.sessions, prefix="fine")
    notifier = TelegramNotifier(app.bot, app.settings.media_dir, instagram=True)
    async with app.sessions() as session:
        manual = await session.get(MediaItem, media_id)
        fine = await session.get(MediaItem, fine_id)
        assert manual is not None and fine is not None
        manual.telegram_file_id = fine.telegram_file_id = "cached-file"
        await notifier.send(ClaimedItem.of(queue_id, manual))
        await notifier.send(ClaimedItem.of(uuid.uuid4(), fine))

    [manual_send] = app.telegram.of(SendVideo)
    [fine_send] = app.telegram.of(SendPhoto)
    assert "🤖 Auto Post" not in _labels(manual_send.reply_markup)
    assert f"✋ Manual only: {REASON}" in manual_send.caption
    assert "🤖 Auto Post" in _labels(fine_send.reply_markup)
    assert "Manual only" not in fine_send.caption


async def test_an_old_robot_button_says_why_and_holds_nothing_even_pressed_twice(
    app: TestApp,
    graph: respx.MockRouter,  # noqa: F811
) -> None:
    _, queue_id = await _manual_only_item(app)

    await app.feed(_press_update(queue_id))
    await app.feed(_press_update(queue_id))

    toasts = [answer for answer in app.telegram.of(AnswerCallbackQuery)]
    assert len(toasts) == 2
    for toast in toasts:
        assert toast.show_alert and REASON in toast.text and "by hand" in toast.text
        assert len(toast.text) <= 200
    # Nothing was held or published: the item waits for a person, buttons intact.
    assert await _queue_status(app) == ["sent"]
    assert not [call for call in graph.calls if call.request.method == "POST"]
    edits = app.telegram.of(EditMessageCaption)
    assert edits and all("🤖 Auto Post" not in _labels(edit.reply_markup) for edit in edits)
    assert "✅ Posted" in _labels(edits[-1].reply_markup)
    [row] = await fetch_all(app.sessions, "SELECT count(*) AS n FROM posting_history")
    assert row.n == 0


async def test_queue_marks_manual_only_items(app: TestApp) -> None:
    await _manual_only_item(app)
    [fine] = await seed_media(app.sessions, prefix="fine")
    await seed_queue_item(app.sessions, fine, message_id=501)

    await app.feed(command_update("/queue", TEAM_CHAT, ALICE.user))
    [listing] = [m for m in app.telegram.of(SendMessage) if "in flight" in m.text]
    [manual_line] = [line for line in listing.text.splitlines() if "item0" in line]
    [fine_line] = [line for line in listing.text.splitlines() if "fine0" in line]
    assert f"✋ manual only: {REASON}" in manual_line
    assert "manual only" not in fine_line


async def test_a_cancelled_reject_gives_back_the_buttons_without_the_robot(
    app: TestApp,
    graph: respx.MockRouter,  # noqa: F811
) -> None:
    _, queue_id = await _manual_only_item(app)
    # The message as the notifier sent it: its caption says why, where 🤖 would be.
    caption = notification_caption("item0.mp4", "cat", "Hi", manual_only=REASON)

    await app.feed(_press_update(queue_id, QueueAction.REJECT, caption=caption))
    await app.feed(_press_update(queue_id, QueueAction.CANCEL_REJECT, caption=caption))

    restored = app.telegram.of(EditMessageCaption)[-1]
    assert "🚫 Reject" in _labels(restored.reply_markup)
    assert "🤖 Auto Post" not in _labels(restored.reply_markup)
    assert f"Manual only: {REASON}" in restored.caption
    # An item Instagram takes gets its 🤖 back.
    [fine] = await seed_media(app.sessions, prefix="fine")
    fine_queue_id = await seed_queue_item(app.sessions, fine, message_id=501)
    await app.feed(_press_update(fine_queue_id, QueueAction.CANCEL_REJECT))
    assert "🤖 Auto Post" in _labels(app.telegram.of(EditMessageCaption)[-1].reply_markup)
