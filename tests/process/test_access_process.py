"""The real `python -m bot run` meeting real groups: anonymous admins and the bot's own membership."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from tests.helpers.bot_process import (
    IG_TOKEN,
    IG_USER,
    BotProcess,
    autopost_button,
    eventually,
    first_send_recorded,
    owe_a_slot_again,
    posted_button,
    press,
)
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_graph import FakeGraphServer
from tests.helpers.support import ALICE, CAROL, TEAM_CHAT, execute, fetch_all, seed_chat


def _replies(api: FakeBotApi) -> list[str]:
    return [str(call.params.get("text")) for call in api.of("sendMessage", TEAM_CHAT)]


async def test_an_anonymous_admin_is_an_admin_and_never_a_user(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
) -> None:
    await seed_chat(session_factory)
    process = BotProcess({**bot_env, "ALLOWED_USER_IDS": "7777"})
    await process.start()
    try:
        api.anonymous_admin_command(TEAM_CHAT, "/next")
        api.anonymous_admin_command(TEAM_CHAT, "/pause")
        await api.wait_for("sendMessage", count=2)
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    replies = _replies(api)
    assert any("library is empty" in reply for reply in replies), replies
    assert any("Paused" in reply for reply in replies), replies
    assert not any("not allowed" in reply or "Only admins" in reply for reply in replies)
    assert await fetch_all(session_factory, "SELECT 1 FROM users") == []
    logged = await fetch_all(
        session_factory,
        "SELECT name, user_id, context->>'actor' AS actor FROM user_interactions ORDER BY name",
    )
    assert {(row.name, row.user_id, row.actor) for row in logged} == {
        ("next", None, "anonymous admin"),
        ("pause", None, "anonymous admin"),
        ("settings.change", None, "anonymous admin"),
    }
    assert "1087968824" not in process.log
    assert "Traceback" not in process.log


async def test_re_adding_the_bot_resets_the_chat_s_backoff_at_once(
    api: FakeBotApi,
    bot: BotProcess,
    library: list[Any],
    session_factory: Any,
) -> None:
    api.remove_bot(TEAM_CHAT, ALICE.bot_api())
    await bot.start()
    # Refused at four slots in a row: the chat's backoff has grown to 8 s (1, 2, 4, then 8).
    for refused in range(1, 5):
        await api.wait_for("sendPhoto", count=refused, timeout=30)
        await owe_a_slot_again(session_factory)
    api.readd_bot(TEAM_CHAT, ALICE.bot_api())
    readmitted = time.monotonic()

    async def sent() -> bool:
        return any(call.result is not None for call in api.of("sendPhoto", TEAM_CHAT))

    await eventually(sent, timeout=15)
    assert time.monotonic() - readmitted < 4.0
    api.remove_bot(TEAM_CHAT, ALICE.bot_api())

    async def removal_logged_twice() -> bool:
        return bot.log.count('"chat.bot_removed"') == 2

    await eventually(removal_logged_twice)
    assert await bot.stop() == 0
    polls = api.of("getUpdates")
    assert "my_chat_member" in polls[0].params["allowed_updates"]
    assert bot.log.count('"chat.bot_readmitted"') == 1
    assert "Traceback" not in bot.log


async def test_the_expired_token_alert_reaches_the_presser(
    api: FakeBotApi,
    graph: FakeGraphServer,
    autopost_env: dict[str, str],
    library: list[Any],
    session_factory: Any,
) -> None:
    """Telegram refuses a callback answer over 200 characters: the alert must fit."""
    graph.state.token_expires_at = int(time.time()) - 86400
    await execute(
        session_factory,
        "INSERT INTO instagram_accounts (chat_id, ig_user_id, access_token, flavour,"
        " configured_token_sha256, token_obtained_at, expires_at, expires_at_source)"
        " VALUES (:chat, :user, :token, 'facebook', :sha, now() - interval '70 days',"
        " now() - interval '1 day', 'assumed')",
        chat=TEAM_CHAT,
        user=IG_USER,
        token=IG_TOKEN,
        sha=hashlib.sha256(IG_TOKEN.encode()).hexdigest(),
    )
    process = BotProcess(autopost_env)
    await process.start()
    try:
        send = await first_send_recorded(api, session_factory)
        press(api, send.result, autopost_button(send.result))
        [answer] = await api.wait_for("answerCallbackQuery")
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert answer.result is True, answer.params  # not refused as too long
    assert "token has expired" in answer.params["text"]
    assert str(answer.params["show_alert"]).lower() == "true"
    assert '"telegram.answer_failed"' not in process.log


async def test_a_chat_admin_may_press_with_allowed_user_ids(
    api: FakeBotApi,
    bot_env: dict[str, str],
    library: list[Any],
    session_factory: Any,
) -> None:
    api.admins[TEAM_CHAT] = [CAROL.bot_api()]  # a Telegram admin, not in ADMIN_USER_IDS
    process = BotProcess({**bot_env, "ALLOWED_USER_IDS": "7777"})
    await process.start()
    try:
        send = await first_send_recorded(api, session_factory)
        api.push_update(
            callback_query={
                "id": "cb-carol",
                "from": CAROL.bot_api(),
                "chat_instance": "ci",
                "message": send.result,
                "data": posted_button(send.result),
            }
        )
        await api.wait_for("editMessageCaption")
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    [posted] = await fetch_all(
        session_factory,
        "SELECT h.status, u.telegram_user_id FROM posting_history h"
        " JOIN users u ON u.id = h.acted_by_user_id",
    )
    assert (posted.status, posted.telegram_user_id) == ("posted", CAROL.id)
    assert '"callback.not_allowed"' not in process.log
