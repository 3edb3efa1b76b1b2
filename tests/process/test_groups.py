"""Real Telegram groups: a group upgraded to a supergroup, topics, presses on vanished messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import SendMessage, SendPhoto

from bot.config import ConfigError, Settings, load_settings
from bot.services.chats import ChatDirectory
from bot.services.inflight import InFlightOutcome
from tests.helpers.bot_process import (
    BotProcess,
    command,
    eventually,
    first_send_recorded,
    owe_a_slot_again,
    posted_button,
    press,
    run_bot_command,
)
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_telegram_session import command_update, group_upgraded
from tests.helpers.instagram_process import (  # noqa: F401 (graph is a fixture)
    FB_GRAPH,
    T0,
    account_process,
    graph,
    ig_settings,
    process,
)
from tests.helpers.support import (
    ADA,
    ALICE,
    BOB,
    TEAM_CHAT,
    Clock,
    TestApp,
    execute,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
)

OLD_GROUP = -4001000  # a basic group's id
SUPERGROUP = -1004001000  # the id Telegram gives it on the upgrade

CHAT_KEYED = (
    ("chat_settings", "telegram_chat_id"),
    ("media_items", "chat_id"),
    ("posting_queue", "chat_id"),
    ("posting_history", "chat_id"),
    ("user_interactions", "chat_id"),
    ("instagram_accounts", "chat_id"),
)


async def _group_library(session_factory: Any) -> None:
    """The old group's library; a slot is owed as soon as the bot starts (bot_env's files)."""
    await seed_chat(
        session_factory, OLD_GROUP, posting_hours_start=0, posting_hours_end=0, posts_per_day=50
    )
    await seed_media(session_factory, OLD_GROUP, count=3)


async def _rows_keyed_by(session_factory: Any, chat_id: int) -> dict[str, int]:
    found = {}
    for table, column in CHAT_KEYED:
        rows = await fetch_all(
            session_factory, f"SELECT count(*) AS n FROM {table} WHERE {column} = :c", c=chat_id
        )
        if rows[0].n:
            found[table] = rows[0].n
    return found


def _delivered_files(api: FakeBotApi, chat_id: int) -> list[str]:
    """The files Telegram accepted in `chat_id` (a refused send has no result)."""
    return [
        str(call.result["caption"]).split("<code>", 1)[1].split("</code>", 1)[0]
        for call in api.of("sendPhoto", chat_id)
        if call.result is not None
    ]


async def test_a_group_upgraded_mid_queue_continues_in_the_supergroup(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
) -> None:
    await _group_library(session_factory)
    env = {**bot_env, "TELEGRAM_CHAT_ID": str(OLD_GROUP)}
    first = BotProcess(env)
    await first.start()
    try:
        [sent] = await api.wait_for("sendPhoto")
        assert sent.result["chat"]["id"] == OLD_GROUP

        async def settled() -> bool:
            rows = await fetch_all(session_factory, "SELECT status FROM posting_queue")
            return [r.status for r in rows] == ["sent"]

        await eventually(settled)
        # Telegram upgrades the group (no service message yet): the next send is refused.
        api.upgrade_group(OLD_GROUP, SUPERGROUP, service=False)
        await owe_a_slot_again(session_factory)

        async def in_the_supergroup() -> bool:
            return bool(_delivered_files(api, SUPERGROUP))

        await eventually(in_the_supergroup, timeout=5)
        await eventually(_queue_count(session_factory, 2))

        # The service messages arrive late: nothing moves twice, nobody is told twice.
        api.upgrade_group(OLD_GROUP, SUPERGROUP)
        api.push_update(message=command(SUPERGROUP, "/status"))
        await api.wait_for("sendMessage", count=2)
        await asyncio.sleep(0.5)
        notices = [c for c in api.of("sendMessage", SUPERGROUP) if "upgraded" in c.params["text"]]
        assert len(notices) == 1
        [status] = [c for c in api.of("sendMessage", SUPERGROUP) if "Running" in c.params["text"]]
        assert status is not None
        assert not api.of("sendMessage", OLD_GROUP)

        assert await _rows_keyed_by(session_factory, OLD_GROUP) == {}
        moved = await _rows_keyed_by(session_factory, SUPERGROUP)
        assert moved["media_items"] == 3 and moved["posting_queue"] == 2
        assert moved["chat_settings"] == 1
        [setting] = await fetch_all(
            session_factory,
            "SELECT posts_per_day FROM chat_settings WHERE telegram_chat_id = :c",
            c=SUPERGROUP,
        )
        assert setting.posts_per_day == 50  # the team's settings came along
        mapping = await fetch_all(
            session_factory, "SELECT old_chat_id, new_chat_id, team_told_at FROM chat_migrations"
        )
        assert [(m.old_chat_id, m.new_chat_id) for m in mapping] == [(OLD_GROUP, SUPERGROUP)]
        assert mapping[0].team_told_at is not None
        # Not failed, not backed off; no item delivered twice.
        assert await fetch_all(session_factory, "SELECT 1 FROM posting_history") == []
        delivered = _delivered_files(api, OLD_GROUP) + _delivered_files(api, SUPERGROUP)
        assert len(delivered) == len(set(delivered)) == 2
        assert await first.stop() == 0
    finally:
        await first.kill_and_show_log()
    assert '"chat.migrated"' in first.log
    assert f"TELEGRAM_CHAT_ID={SUPERGROUP}" in first.log
    assert '"scheduler.chat_unreachable"' not in first.log
    assert '"delivery.failed"' not in first.log

    # Restarted with the old id still configured: warned, and the supergroup is served.
    second = BotProcess(env)
    await second.start()
    try:
        [item] = [c for c in api.of("sendPhoto", SUPERGROUP) if c.result is not None]
        press(api, item.result, posted_button(item.result))

        async def recorded() -> bool:
            rows = await fetch_all(session_factory, "SELECT chat_id, status FROM posting_history")
            return [tuple(r) for r in rows] == [(SUPERGROUP, "posted")]

        await eventually(recorded)
        assert await second.stop() == 0
    finally:
        await second.kill_and_show_log()
    assert second.log.count('"chat.config_outdated"') == 1
    assert await _rows_keyed_by(session_factory, OLD_GROUP) == {}

    _, out, err = await run_bot_command(env, "check")
    assert f"set TELEGRAM_CHAT_ID to {SUPERGROUP} instead of {OLD_GROUP}" in out + err
    assert f"library {SUPERGROUP}: 3 item(s) indexed" in out + err

    # Indexing for the old id indexes the supergroup's library.
    code, out, err = await run_bot_command(env, "index", env["MEDIA_DIR"], "--chat", str(OLD_GROUP))
    assert code == 0, out + err
    assert f"became the supergroup {SUPERGROUP}" in out + err
    assert await _rows_keyed_by(session_factory, OLD_GROUP) == {}


def _queue_count(session_factory: Any, count: int) -> Any:
    async def reached() -> bool:
        rows = await fetch_all(session_factory, "SELECT status FROM posting_queue")
        return [r.status for r in rows] == ["sent"] * count

    return reached


async def test_the_service_message_moves_the_chat_before_any_send_fails(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
) -> None:
    await _group_library(session_factory)
    await seed_chat(session_factory, OLD_GROUP, is_paused=True)
    process = BotProcess(
        {**bot_env, "TELEGRAM_CHAT_ID": str(OLD_GROUP), "ADMIN_USER_IDS": str(ALICE.id)}
    )
    await process.start()
    try:
        await api.wait_for("getUpdates")
        api.upgrade_group(OLD_GROUP, SUPERGROUP)

        async def moved() -> bool:
            return not await _rows_keyed_by(session_factory, OLD_GROUP)

        await eventually(moved)
        # /resume in the supergroup is served: the queue runs there.
        api.push_update(message=command(SUPERGROUP, "/resume"))
        await eventually(lambda: _sent_to(api, SUPERGROUP))
        assert not [c for c in api.of("sendPhoto", OLD_GROUP)]
        notices = [c for c in api.of("sendMessage", SUPERGROUP) if "upgraded" in c.params["text"]]
        assert len(notices) == 1
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "Traceback" not in process.log


async def _sent_to(api: FakeBotApi, chat_id: int) -> bool:
    return bool(_delivered_files(api, chat_id))


# -- forum supergroups: the queue lives in one topic ------------------------------------


def _in_topic(message: dict[str, Any], topic: int) -> dict[str, Any]:
    return {**message, "message_thread_id": topic, "is_topic_message": True}


async def test_the_queue_lives_in_its_topic(
    api: FakeBotApi,
    bot_env: dict[str, str],
    library: list[Any],
    session_factory: Any,
) -> None:
    process = BotProcess(
        {**bot_env, "TELEGRAM_CHAT_ID": f"{TEAM_CHAT}:55", "ADMIN_USER_IDS": str(ALICE.id)}
    )
    await process.start()
    try:
        [scheduled] = await api.wait_for("sendPhoto")
        assert int(scheduled.params["message_thread_id"]) == 55
        assert scheduled.result["is_topic_message"] is True

        # /next typed in another topic: the item goes to the queue's, the answer says so.
        api.push_update(message=_in_topic(command(TEAM_CHAT, "/next"), 77))
        sends = await api.wait_for("sendPhoto", count=2)
        assert int(sends[1].params["message_thread_id"]) == 55
        [where] = await api.wait_for("sendMessage")
        assert where.params["text"] == "📬 Sent to the queue's topic (#55)."
        assert int(where.params["message_thread_id"]) == 77

        # The team moves the queue to topic 77 from inside it.
        api.push_update(message=_in_topic(command(TEAM_CHAT, "/settings topic here"), 77))
        replies = await api.wait_for("sendMessage", count=2)
        assert "#77" in replies[1].params["text"]
        [row] = await fetch_all(
            session_factory,
            "SELECT message_thread_id FROM chat_settings WHERE telegram_chat_id = :c",
            c=TEAM_CHAT,
        )
        assert row.message_thread_id == 77
        # "here" outside a topic is refused, and nothing changes.
        api.push_update(message=command(TEAM_CHAT, "/settings topic here"))
        refused = await api.wait_for("sendMessage", count=3)
        assert "inside the topic" in refused[2].params["text"]

        await owe_a_slot_again(session_factory)
        sends = await api.wait_for("sendPhoto", count=3)
        assert int(sends[2].params["message_thread_id"]) == 77
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "Traceback" not in process.log


def test_a_configured_chat_may_name_its_topic() -> None:
    settings = load_settings(_env_file=None, telegram_chat_id=f"{TEAM_CHAT}:55, -1002000")
    assert settings.chat_ids == (TEAM_CHAT, -1002000)
    assert settings.chat_topics == {TEAM_CHAT: 55}
    with pytest.raises(ConfigError, match="TELEGRAM_CHAT_ID: the topic of"):
        load_settings(_env_file=None, telegram_chat_id=f"{TEAM_CHAT}:general")


# -- presses on messages Telegram no longer shows; sent items have a lifetime ---------------


async def test_a_press_on_a_vanished_message_is_recorded_with_a_toast(
    api: FakeBotApi,
    bot_env: dict[str, str],
    library: list[Any],
    session_factory: Any,
) -> None:
    process = BotProcess(bot_env)
    await process.start()
    try:
        sent = await first_send_recorded(api, session_factory)
        # A member deleted the message: Telegram sends the press with an InaccessibleMessage.
        vanished = api.inaccessible(sent.result)
        press(api, vanished, posted_button(sent.result))
        [answer] = await api.wait_for("answerCallbackQuery")
        assert answer.params["text"] == "✅ Posted by Alice"
        history = await fetch_all(
            session_factory, "SELECT status, acted_by_name, chat_id FROM posting_history"
        )
        assert [tuple(r) for r in history] == [("posted", "Alice", TEAM_CHAT)]
        # Pressed again: already recorded, still one row, still a toast.
        press(api, vanished, posted_button(sent.result))
        answers = await api.wait_for("answerCallbackQuery", count=2)
        assert "Alice" in answers[1].params["text"]
        assert len(await fetch_all(session_factory, "SELECT 1 FROM posting_history")) == 1
        assert not api.of("editMessageCaption") and not api.of("editMessageText")
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "Traceback" not in process.log


async def test_an_unpressed_item_goes_back_to_the_library_after_its_lifetime(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
) -> None:
    # Paused: nothing new is sent, so only the lifetime's effect shows.
    await seed_chat(
        session_factory, TEAM_CHAT, sent_ttl_days=3, message_thread_id=55, is_paused=True
    )
    old, fresh = await seed_media(session_factory, TEAM_CHAT, count=2)
    await seed_queue_item(session_factory, old, message_id=501)
    await seed_queue_item(session_factory, fresh, message_id=502)
    await execute(
        session_factory,
        "UPDATE posting_queue SET sent_at = now() - make_interval(days => :d)"
        " WHERE media_item_id = :m",
        d=4,
        m=old,
    )
    await execute(session_factory, "UPDATE posting_queue SET sent_at = now() WHERE sent_at IS NULL")
    process = BotProcess(bot_env)
    await process.start()
    try:
        [line] = await api.wait_for("sendMessage")
        assert line.params["text"].startswith("↩️ Nobody pressed these in 3 days")
        assert "item0.jpg" in line.params["text"] and "item1.jpg" not in line.params["text"]
        assert int(line.params["message_thread_id"]) == 55
        await asyncio.sleep(1.0)  # more ticks: told once
        assert len(api.of("sendMessage")) == 1
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    queue = await fetch_all(session_factory, "SELECT media_item_id FROM posting_queue")
    assert [r.media_item_id for r in queue] == [fresh]
    assert await fetch_all(session_factory, "SELECT 1 FROM posting_history") == []
    # Back in the library: eligible again.
    eligible = await fetch_all(
        session_factory, "SELECT 1 FROM media_items m WHERE m.id = :m AND m.is_active", m=old
    )
    assert eligible


def _inflight_buttons(reply: Any) -> list[str]:
    keyboard = reply.params["reply_markup"]["inline_keyboard"]
    return [button["callback_data"] for row in keyboard for button in row]


async def tap(
    api: FakeBotApi, message: dict[str, Any], data: str, by: dict[str, object] | None = None
) -> str:
    """Press a button and return the toast it got."""
    before = len(api.of("answerCallbackQuery"))
    api.push_update(
        callback_query={
            "id": f"tap{len(api.updates)}",
            "from": by or ALICE.bot_api(),
            "chat_instance": "ci",
            "message": message,
            "data": data,
        }
    )
    answers = await api.wait_for("answerCallbackQuery", count=before + 1)
    return str(answers[-1].params["text"])


async def test_an_admin_resends_or_drops_an_item_in_flight_once(
    api: FakeBotApi,
    bot_env: dict[str, str],
    library: list[Any],
    session_factory: Any,
) -> None:
    process = BotProcess({**bot_env, "ADMIN_USER_IDS": str(ALICE.id)})
    await process.start()
    try:
        [first] = await api.wait_for("sendPhoto")

        async def sent_at(message_id: int) -> bool:
            rows = await fetch_all(
                session_factory, "SELECT status, telegram_message_id AS m FROM posting_queue"
            )
            return [(r.status, r.m) for r in rows] == [("sent", message_id)]

        await eventually(lambda: sent_at(first.result["message_id"]))
        api.push_update(message=command(TEAM_CHAT, "/queue"))
        [listing] = await api.wait_for("sendMessage")
        resend, drop = _inflight_buttons(listing)
        assert resend.startswith("fl:resend:") and drop.startswith("fl:drop:")

        # Its answer is lost, so the admin taps again: one resend, never two.
        api.lose_answer("answerCallbackQuery")
        press(api, listing.result, resend)
        [_, again] = await api.wait_for("sendPhoto", count=2)
        assert again.params["caption"] == first.params["caption"]
        await eventually(lambda: sent_at(again.result["message_id"]))
        [removed] = await api.wait_for("editMessageReplyMarkup")
        assert int(removed.params["message_id"]) == first.result["message_id"]
        assert await tap(api, listing.result, resend) == (
            "Already pressed, dropped or resent since /queue listed it."
        )
        # The stale list's drop acts on nothing either: the item moved to a new message.
        assert (await tap(api, listing.result, drop)).startswith("Already")
        assert len(api.of("sendPhoto")) == 2

        # A member who is not an admin is refused.
        api.push_update(message=command(TEAM_CHAT, "/queue"))
        listings = await api.wait_for("sendMessage", count=2)
        _, fresh_drop = _inflight_buttons(listings[-1])
        refused = await tap(api, listings[-1].result, fresh_drop, by=BOB.bot_api())
        assert refused == "⛔ Only admins can drop or resend an item."
        assert await fetch_all(session_factory, "SELECT 1 FROM posting_queue")

        dropped = await tap(api, listings[-1].result, fresh_drop)
        assert dropped == "↩️ Dropped: the item is back in the library."
        assert (await tap(api, listings[-1].result, fresh_drop)).startswith("Already")
        assert await fetch_all(session_factory, "SELECT 1 FROM posting_queue") == []
        assert await fetch_all(session_factory, "SELECT 1 FROM posting_history") == []
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "Traceback" not in process.log


# -- an Instagram expiry warning sent just as the group is upgraded -------------------------


async def test_an_expiry_warning_follows_the_upgraded_group(
    settings: Settings,
    database_url: str,
    graph: respx.MockRouter,  # noqa: F811
) -> None:
    clock = Clock(T0)
    graph.get(f"{FB_GRAPH}/debug_token").respond(
        json={"data": {"expires_at": int((T0 + timedelta(days=5)).timestamp())}}
    )
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        await execute(
            bot.sessions,
            "UPDATE chat_settings SET message_thread_id = 55 WHERE telegram_chat_id = :c",
            c=TEAM_CHAT,
        )
        bot.telegram.fail_next(
            SendMessage, group_upgraded(SendMessage(chat_id=TEAM_CHAT, text="warning"), SUPERGROUP)
        )
        await bot.services.token_care.tick()
        await bot.services.token_care.tick()  # marked once: never sent twice

        warnings = [m for m in bot.telegram.of(SendMessage) if "expires in about" in m.text]
        assert [(m.chat_id, m.message_thread_id) for m in warnings] == [
            (TEAM_CHAT, 55),  # refused: the group was upgraded
            (SUPERGROUP, 55),  # the settings, the topic included, moved with it
        ]
        [account] = await fetch_all(
            bot.sessions, "SELECT chat_id, warned_7d_at FROM instagram_accounts"
        )
        assert (account.chat_id, account.warned_7d_at) == (SUPERGROUP, clock.now)
        notices = [m for m in bot.telegram.of(SendMessage) if "upgraded" in m.text]
        assert [m.chat_id for m in notices] == [SUPERGROUP]
        assert bot.services.instagram_accounts.autopost_available(SUPERGROUP)
        assert await _rows_keyed_by(bot.sessions, TEAM_CHAT) == {}


async def test_two_processes_following_one_upgrade_move_it_once_and_tell_once(
    settings: Settings, database_url: str
) -> None:
    clock = Clock(T0)
    async with (
        process(settings, database_url, clock) as first,
        process(settings, database_url, clock) as second,
    ):
        await seed_chat(first.sessions, posts_per_day=7)
        [media_id] = await seed_media(first.sessions)
        await seed_queue_item(first.sessions, media_id)
        await asyncio.gather(
            first.services.chat_directory.follow(TEAM_CHAT, SUPERGROUP, first.bot),
            second.services.chat_directory.follow(TEAM_CHAT, SUPERGROUP, second.bot),
        )
        notices = first.telegram.of(SendMessage) + second.telegram.of(SendMessage)
        assert [m.chat_id for m in notices] == [SUPERGROUP]
        assert await _rows_keyed_by(first.sessions, TEAM_CHAT) == {}
        [chat] = await fetch_all(
            first.sessions, "SELECT telegram_chat_id, posts_per_day FROM chat_settings"
        )
        assert (chat.telegram_chat_id, chat.posts_per_day) == (SUPERGROUP, 7)
        # Both now serve the supergroup (the configuration still names the old id).
        assert first.services.chat_directory.served() == (SUPERGROUP,)
        assert second.services.chat_directory.served() == (SUPERGROUP,)


async def test_an_admin_sets_the_lifetime_and_the_topic_by_command(app: TestApp) -> None:
    async def say(text: str) -> str:
        await app.feed(command_update(text, TEAM_CHAT, ADA.user))
        await app.services.tasks.drain(5)
        return str(app.telegram.of(SendMessage)[-1].text)

    async def stored() -> tuple[int, int | None]:
        [chat] = await fetch_all(
            app.sessions, "SELECT sent_ttl_days, message_thread_id FROM chat_settings"
        )
        return chat.sent_ttl_days, chat.message_thread_id

    assert await say("/settings lifetime 3") == (
        "✅ Items nobody pressed return to the library after 3 days."
    )
    assert "Usage" in await say("/settings lifetime soon")
    assert "between 1 and 365" in await say("/settings lifetime 0")
    assert await say("/settings topic 55") == "✅ The queue now lives in the #55 topic."
    assert "inside the topic" in await say("/settings topic here")
    assert await stored() == (3, 55)
    assert await say("/settings topic off") == "✅ The queue now lives in the General topic."
    assert await stored() == (3, None)
    shown = await say("/settings")
    assert "Queue topic: General" in shown and "after 3 days" in shown


async def test_a_move_another_process_made_is_scheduled_here_too(
    settings: Settings, database_url: str
) -> None:
    async with (
        process(settings, database_url, Clock(datetime.now(UTC))) as mover,
        process(settings, database_url, Clock(datetime.now(UTC))) as bystander,
    ):
        await seed_chat(
            mover.sessions, posting_hours_start=0, posting_hours_end=0, posts_per_day=50
        )
        await seed_media(mover.sessions)
        assert await bystander.services.scheduler.due_chats() == [TEAM_CHAT]
        await mover.services.chat_directory.follow(TEAM_CHAT, SUPERGROUP, mover.bot)
        # The bystander never saw the move, yet its scheduler serves the supergroup.
        assert bystander.services.chat_directory.served() == (TEAM_CHAT,)
        assert await bystander.services.scheduler.due_chats() == [SUPERGROUP]


async def test_a_supergroup_already_registered_keeps_its_topic_and_takes_the_settings(
    settings: Settings, database_url: str
) -> None:
    async with process(settings, database_url, Clock(T0)) as bot:
        await seed_chat(bot.sessions, posts_per_day=9)
        await seed_chat(bot.sessions, SUPERGROUP, message_thread_id=77)
        topic = await bot.services.chat_directory.follow(TEAM_CHAT, SUPERGROUP, bot.bot)
        assert topic == 77
        [chat] = await fetch_all(
            bot.sessions,
            "SELECT telegram_chat_id, posts_per_day, message_thread_id FROM chat_settings",
        )
        assert tuple(chat) == (SUPERGROUP, 9, 77)
        [notice] = bot.telegram.of(SendMessage)
        assert (notice.chat_id, notice.message_thread_id) == (SUPERGROUP, 77)


async def test_a_directory_that_cannot_tell_the_team_refuses_to_follow_before_moving_anything(
    settings: Settings, database_url: str
) -> None:
    """The doctor's and the indexer's directories only read moves: following one is a bug."""
    async with process(settings, database_url, Clock(T0)) as bot:
        await seed_chat(bot.sessions)
        reader = ChatDirectory(bot.sessions, (TEAM_CHAT,))
        with pytest.raises(RuntimeError, match="notices"):
            await reader.follow(TEAM_CHAT, SUPERGROUP, bot.bot)
        assert await fetch_all(bot.sessions, "SELECT 1 FROM chat_migrations") == []
        [chat] = await fetch_all(bot.sessions, "SELECT telegram_chat_id FROM chat_settings")
        assert chat.telegram_chat_id == TEAM_CHAT
        assert bot.telegram.of(SendMessage) == []


async def test_the_runway_warning_follows_the_upgraded_group(
    settings: Settings, database_url: str
) -> None:
    async with (
        process(settings, database_url, Clock(datetime.now(UTC))) as mover,
        process(settings, database_url, Clock(datetime.now(UTC))) as bystander,
    ):
        await seed_chat(mover.sessions, posts_per_day=3, runway_warning_days=7)
        await seed_media(mover.sessions, count=3)
        await mover.services.chat_directory.follow(TEAM_CHAT, SUPERGROUP, mover.bot)
        # Both the process that followed the upgrade and one that never saw it.
        for each in (mover, bystander):
            await each.services.runway.tick()
        warned = [
            call.chat_id
            for each in (mover, bystander)
            for call in each.telegram.of(SendMessage)
            if "running low" in call.text
        ]
        assert warned == [SUPERGROUP]


async def test_a_resend_waiting_for_telegram_is_not_taken_as_stuck(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_chat(app.sessions)
    # Sent before: Telegram holds the file, the resend sends its id.
    [media] = await seed_media(app.sessions, telegram_file_id="held-by-telegram")
    queue_id = await seed_queue_item(app.sessions, media, message_id=500)
    delivery = app.services.inflight.delivery
    real_send = delivery.notifier.send
    taken: list[Any] = []

    async def send_while_a_sweep_runs(item: Any) -> Any:
        # The resend waits for its turn (the send budget); another process's sweep ticks.
        taken.extend(await delivery.take_stuck())
        return await real_send(item)

    monkeypatch.setattr(delivery.notifier, "send", send_while_a_sweep_runs)
    outcome = await app.services.inflight.resend(queue_id, TEAM_CHAT, 500)
    assert outcome is InFlightOutcome.RESENT
    assert taken == []  # the resend's row is held, not a crashed sender's
    assert len(app.telegram.of(SendPhoto)) == 1
    assert not app.telegram.of(SendMessage)  # no unconfirmed notice beside the resend


async def test_the_unconfirmed_notice_follows_the_upgraded_group(
    settings: Settings, database_url: str
) -> None:
    async with process(settings, database_url, Clock(datetime.now(UTC))) as bot:
        await seed_chat(bot.sessions)
        [media] = await seed_media(bot.sessions, telegram_file_id="held-by-telegram")
        await seed_queue_item(bot.sessions, media)
        # Its sender crashed after the send left; meanwhile Telegram upgraded the group.
        await execute(
            bot.sessions,
            "UPDATE posting_queue SET status = 'sending', telegram_message_id = NULL,"
            " lease_expires_at = NULL",
        )
        bot.telegram.fail_next(
            SendMessage, group_upgraded(SendMessage(chat_id=TEAM_CHAT, text="notice"), SUPERGROUP)
        )
        delivery = bot.services.inflight.delivery
        [item] = await delivery.take_stuck()
        await delivery.settle_unconfirmed(item)
        notices = [m.chat_id for m in bot.telegram.of(SendMessage) if m.reply_markup is not None]
        assert notices == [TEAM_CHAT, SUPERGROUP]  # refused there, then in the supergroup
        [row] = await fetch_all(bot.sessions, "SELECT chat_id, status FROM posting_queue")
        assert tuple(row) == (SUPERGROUP, "sent")


async def test_a_slot_set_aside_in_the_supergroup_is_refilled_there(app: TestApp) -> None:
    await seed_chat(app.sessions, posting_hours_start=0, posting_hours_end=0, posts_per_day=50)
    await seed_media(app.sessions, count=2, telegram_file_id="held-by-telegram")
    photo = SendPhoto(chat_id=TEAM_CHAT, photo="x")
    # Upgraded before the send; the supergroup then refuses the file itself.
    app.telegram.fail_next(SendPhoto, group_upgraded(photo, SUPERGROUP))
    app.telegram.fail_next(
        SendPhoto, TelegramBadRequest(method=photo, message="Bad Request: IMAGE_PROCESS_FAILED")
    )
    assert await app.services.scheduler.fill_owed_slot(TEAM_CHAT) is True
    assert [call.chat_id for call in app.telegram.of(SendPhoto)] == [
        TEAM_CHAT,  # upgraded
        SUPERGROUP,  # refused: set aside
        SUPERGROUP,  # the slot's next item
    ]
    [row] = await fetch_all(app.sessions, "SELECT chat_id, status FROM posting_queue")
    assert tuple(row) == (SUPERGROUP, "sent")
