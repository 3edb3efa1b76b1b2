"""End to end: the real `python -m bot run` against a fake Bot API server and a real database."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.helpers.bot_process import (
    BotProcess,
    command,
    eventually,
    first_send_recorded,
    owe_a_slot_again,
    posted_button,
    press,
    run_bot_command,
    sent_file,
)
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.support import (
    ALICE,
    JPEG,
    OTHER_CHAT,
    TEAM_CHAT,
    TEST_TOKEN,
    fetch_all,
    seed_chat,
    seed_media,
)


async def test_item_arrives_and_posted_is_recorded(
    api: FakeBotApi, bot: BotProcess, library: list[Any], session_factory: Any
) -> None:
    await bot.start()
    [send] = await api.wait_for("sendPhoto")
    assert send.uploaded
    buttons = [b["text"] for row in send.params["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["✅ Posted", "⏭️ Skip", "🚫 Reject"]
    commands = api.of("setMyCommands")[0].params["commands"]
    assert commands[0]["command"] == "start"
    polls = api.of("getUpdates")
    assert set(polls[0].params["allowed_updates"]) == {
        "message",
        "callback_query",
        "my_chat_member",
    }

    press(api, send.result, posted_button(send.result))
    [edit] = await api.wait_for("editMessageCaption")
    assert edit.params["caption"].endswith("✅ Posted by Alice")
    [answer] = api.of("answerCallbackQuery")
    assert answer.params["text"] == "✅ Posted by Alice"
    history = await fetch_all(session_factory, "SELECT status, acted_by_name FROM posting_history")
    assert [tuple(r) for r in history] == [("posted", "Alice")]

    status_command(api)
    [reply] = await api.wait_for("sendMessage")
    assert "Running" in reply.params["text"] and "Last post: <code>item" in reply.params["text"]

    assert await bot.stop() == 0
    assert "Traceback" not in bot.log
    assert TEST_TOKEN not in bot.log


async def test_sigterm_mid_press_still_records_it(
    api: FakeBotApi, bot: BotProcess, library: list[Any], session_factory: Any, database_url: str
) -> None:
    await bot.start()
    send = await first_send_recorded(api, session_factory)  # the scheduler is done with the row
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    blocker = await asyncpg.connect(dsn)
    try:
        # Hold the queue row so the press waits inside its transaction.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM posting_queue FOR UPDATE")
        press(api, send.result, posted_button(send.result))

        async def press_is_waiting() -> bool:
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'storyqueue'"
                " AND wait_event_type = 'Lock'"
            )
            return bool(waiting)

        await eventually(press_is_waiting)
        await bot.signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        await transaction.commit()
    finally:
        await blocker.close()

    assert await bot.wait() == 0
    history = await fetch_all(session_factory, "SELECT status FROM posting_history")
    assert [r.status for r in history] == ["posted"]
    assert api.of("editMessageCaption")[-1].params["caption"].endswith("✅ Posted by Alice")


async def test_429_and_502_are_survived(
    api: FakeBotApi, bot: BotProcess, library: list[Any], session_factory: Any
) -> None:
    api.fail("getUpdates", 502, "Bad Gateway")
    api.fail("answerCallbackQuery", 429, "Too Many Requests: retry after 1", retry_after=1)
    api.fail("editMessageCaption", 502, "Bad Gateway")
    await bot.start()
    [send] = await api.wait_for("sendPhoto")
    press(api, send.result, posted_button(send.result))

    edits = await api.wait_for("editMessageCaption", count=2)
    assert edits[-1].params["caption"].endswith("✅ Posted by Alice")
    assert len(api.of("answerCallbackQuery")) == 2
    history = await fetch_all(session_factory, "SELECT status FROM posting_history")
    assert [r.status for r in history] == ["posted"]
    assert await bot.stop() == 0


async def test_a_5xx_on_a_send_may_have_arrived_and_its_notice_goes_out_once(
    api: FakeBotApi, bot: BotProcess, library: list[Any], session_factory: Any
) -> None:
    """Telegram sent the photo, then answered 502, twice; the notice too: two photos at
    worst, one notice (the request middleware never repeats it), never a failure."""
    for _ in range(2):
        api.lose_answer("sendPhoto")
    api.lose_answer("sendMessage")
    await bot.start()

    async def settled() -> bool:
        rows = await fetch_all(session_factory, "SELECT status FROM posting_queue")
        return [r.status for r in rows] == ["sent"]

    await eventually(settled)
    await asyncio.sleep(1.0)  # a few more ticks: nothing else goes out for it
    [row] = await fetch_all(
        session_factory, "SELECT telegram_message_id, unconfirmed_notice_at FROM posting_queue"
    )
    assert row.telegram_message_id is None and row.unconfirmed_notice_at is not None
    assert len(api.of("sendPhoto")) == 2
    assert len(api.of("sendMessage")) == 1
    assert "didn't confirm" in api.of("sendMessage")[0].params["text"]
    assert await fetch_all(session_factory, "SELECT 1 FROM posting_history") == []
    assert await bot.stop() == 0


async def test_sigkill_during_send_then_restart(
    api: FakeBotApi, bot_env: dict[str, str], library: list[Any], session_factory: Any
) -> None:
    api.hanging.add("sendPhoto")
    first = BotProcess({**bot_env, "SEND_STUCK_AFTER_SECONDS": "1"})
    await first.start()
    await api.wait_for("sendPhoto")
    await first.signal(signal.SIGKILL)
    await first.wait()
    stuck = await fetch_all(session_factory, "SELECT status FROM posting_queue")
    assert [r.status for r in stuck] == ["sending"]

    api.hanging.clear()
    second = BotProcess({**bot_env, "SEND_STUCK_AFTER_SECONDS": "1"})
    await second.start()
    try:

        async def settled() -> bool:
            rows = await fetch_all(session_factory, "SELECT status FROM posting_queue")
            return bool(rows) and all(r.status == "sent" for r in rows)

        await eventually(settled)
        rows = await fetch_all(
            session_factory,
            "SELECT media_item_id, send_attempts, telegram_message_id FROM posting_queue",
        )
        assert len(rows) == 1 and rows[0].send_attempts == 1
        # The killed send may have arrived (even been confirmed): never a second copy,
        # but the team gets the buttons in one notice.
        assert rows[0].telegram_message_id is None
        assert len(api.of("sendPhoto")) == 1
        notices = [c for c in api.of("sendMessage") if "didn't confirm" in c.params["text"]]
        assert len(notices) == 1
    finally:
        assert await second.stop() == 0


async def test_wrong_token_is_one_line_and_exit_2(api: FakeBotApi, bot_env: dict[str, str]) -> None:
    process = BotProcess({**bot_env, "BOT_TOKEN": "999:" + "B" * 35})
    await process.start()
    assert await process.wait() == 2
    lines = [line for line in process.lines if "BOT_TOKEN" in line]
    assert len(lines) == 1 and "rejected" in lines[0]
    assert "Traceback" not in process.log


async def test_check_live_follows_the_heartbeat(
    api: FakeBotApi, bot: BotProcess, bot_env: dict[str, str], library: list[Any]
) -> None:
    async def check(**extra: str) -> int:
        code, _, _ = await run_bot_command({**bot_env, **extra}, "check", "--live")
        return code

    assert await check() == 1  # never ticked
    await bot.start()
    await api.wait_for("sendPhoto")
    assert await check() == 0
    assert await bot.stop() == 0
    await asyncio.sleep(1.2)
    assert await check(HEARTBEAT_MAX_AGE_SECONDS="1") == 1


def status_command(api: FakeBotApi) -> int:
    return api.push_update(message=command(TEAM_CHAT, "/status"))


async def test_a_webhook_is_taken_over_and_the_waiting_command_answered(
    api: FakeBotApi, bot: BotProcess
) -> None:
    api.set_webhook("https://old.example/hook")
    status_command(api)  # waits for whoever takes the updates
    await bot.start()

    [reply] = await api.wait_for("sendMessage")
    assert "Running" in reply.params["text"]
    assert api.webhook_url == ""
    [delete] = api.of("deleteWebhook")
    assert str(delete.params.get("drop_pending_updates", "false")).lower() == "false"
    first_poll = api.calls.index(api.of("getUpdates")[0])
    assert api.calls.index(delete) < first_poll
    removed = [line for line in bot.lines if "telegram.webhook_removed" in line]
    assert len(removed) == 1 and "https://old.example/hook" in removed[0]
    assert "telegram.conflict" not in bot.log and "webhook_conflict" not in bot.log
    assert await bot.stop() == 0


async def test_a_lost_answer_to_delete_webhook_is_asked_again(
    api: FakeBotApi, bot: BotProcess
) -> None:
    api.set_webhook("https://old.example/hook")
    api.lose_answer("deleteWebhook")
    status_command(api)
    await bot.start()

    [reply] = await api.wait_for("sendMessage")
    assert "Running" in reply.params["text"]
    assert len(api.of("deleteWebhook")) == 2 and api.webhook_url == ""
    assert await bot.stop() == 0


async def test_a_refused_command_menu_does_not_stop_the_bot(
    api: FakeBotApi, bot: BotProcess
) -> None:
    """setMyCommands only fills the menu: its failure is logged, the bot still serves."""
    api.fail("setMyCommands", 400, "Bad Request: BOT_COMMAND_INVALID")
    status_command(api)
    await bot.start()

    [reply] = await api.wait_for("sendMessage")
    assert "Running" in reply.params["text"]
    assert "telegram.commands_not_set" in bot.log
    assert await bot.stop() == 0


async def test_a_second_poller_stays_loud_and_distinct(api: FakeBotApi, bot: BotProcess) -> None:
    api.fail("getUpdates", 409, "Conflict: terminated by other getUpdates request")
    await bot.start()
    await api.wait_for("getUpdates", count=2)
    assert await bot.stop() == 0
    conflicts = [line for line in bot.lines if "telegram.conflict" in line]
    assert len(conflicts) == 1 and "another process is polling" in conflicts[0]
    assert "webhook_removed" not in bot.log and not api.of("deleteWebhook")


# -- several team chats in one process ------------------------------------------------

THIRD_CHAT = -1003000


async def _two_libraries(session_factory: Any, media_dir: Path) -> None:
    """Chat A's files are a*.jpg, chat B's b*.jpg; both windows owe a slot at once."""
    for chat, prefix in ((TEAM_CHAT, "a"), (OTHER_CHAT, "b")):
        await seed_chat(
            session_factory, chat, posting_hours_start=0, posting_hours_end=0, posts_per_day=50
        )
        await seed_media(session_factory, chat, count=3, prefix=prefix)
        for index in range(3):
            (media_dir / "cat" / f"{prefix}{index}.jpg").write_bytes(JPEG)


async def test_two_chats_each_get_their_own_media_and_act_per_chat(
    api: FakeBotApi, bot_env: dict[str, str], session_factory: Any
) -> None:
    await _two_libraries(session_factory, Path(bot_env["MEDIA_DIR"]))
    process = BotProcess(
        {
            **bot_env,
            "TELEGRAM_CHAT_ID": f"{TEAM_CHAT}, {OTHER_CHAT},{THIRD_CHAT}",
            "ADMIN_USER_IDS": str(ALICE.id),
        }
    )
    await process.start()
    try:
        await api.wait_for("sendPhoto", count=2)
        [to_a] = api.of("sendPhoto", TEAM_CHAT)
        [to_b] = api.of("sendPhoto", OTHER_CHAT)
        assert sent_file(to_a).startswith("a") and sent_file(to_b).startswith("b")
        # A listed chat nobody set up is registered with the default settings.
        [third] = await fetch_all(
            session_factory,
            "SELECT posts_per_day, is_paused FROM chat_settings WHERE telegram_chat_id = :c",
            c=THIRD_CHAT,
        )
        assert (third.posts_per_day, third.is_paused) == (3, False)

        # B's button replayed on A's message: refused, nothing recorded.
        press(api, to_a.result, posted_button(to_b.result))
        [refused] = await api.wait_for("answerCallbackQuery")
        assert refused.params["text"] == "⚠️ That item isn't in this chat's queue."
        assert await fetch_all(session_factory, "SELECT 1 FROM posting_history") == []

        press(api, to_b.result, posted_button(to_b.result))
        await api.wait_for("editMessageCaption")
        history = await fetch_all(session_factory, "SELECT chat_id, status FROM posting_history")
        assert [tuple(row) for row in history] == [(OTHER_CHAT, "posted")]

        # /status answers per chat: B has a last post, A has none.
        api.push_update(message=command(TEAM_CHAT, "/status"))
        api.push_update(message=command(OTHER_CHAT, "/status"))
        await api.wait_for("sendMessage", count=2)
        status_a = api.of("sendMessage", TEAM_CHAT)[-1].params["text"]
        status_b = api.of("sendMessage", OTHER_CHAT)[-1].params["text"]
        assert "Last post: none yet" in status_a
        assert "Last post: <code>b" in status_b

        # A chat not listed is refused, with a log line.
        api.push_update(message=command(-1009999, "/status"))
        await api.wait_for("sendMessage", count=3)
        assert "only work in my team's chat" in api.of("sendMessage", -1009999)[0].params["text"]

        # /pause in A leaves B sending.
        api.push_update(message=command(TEAM_CHAT, "/pause"))

        async def paused() -> bool:
            rows = await fetch_all(
                session_factory,
                "SELECT telegram_chat_id FROM chat_settings WHERE is_paused",
            )
            return [row.telegram_chat_id for row in rows] == [TEAM_CHAT]

        await eventually(paused)
        await owe_a_slot_again(session_factory)
        await api.wait_for("sendPhoto", count=3)
        await asyncio.sleep(1.0)  # a few more ticks: A stays quiet
        assert len(api.of("sendPhoto", TEAM_CHAT)) == 1
        assert [sent_file(c)[0] for c in api.of("sendPhoto", OTHER_CHAT)] == ["b", "b"]
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert '"command.foreign_chat"' in process.log and "-1009999" in process.log
    assert "Traceback" not in process.log


async def test_a_slow_chat_and_a_chat_that_removed_the_bot_never_hold_up_another(
    api: FakeBotApi, bot_env: dict[str, str], session_factory: Any
) -> None:
    await _two_libraries(session_factory, Path(bot_env["MEDIA_DIR"]))
    await seed_chat(
        session_factory, THIRD_CHAT, posting_hours_start=0, posting_hours_end=0, posts_per_day=50
    )
    await seed_media(session_factory, THIRD_CHAT, count=4, prefix="c")
    for index in range(4):
        (Path(bot_env["MEDIA_DIR"]) / "cat" / f"c{index}.jpg").write_bytes(JPEG)
    api.hanging_chats.add(TEAM_CHAT)  # A: its upload never finishes
    api.forbidden_chats.add(OTHER_CHAT)  # B: the bot was removed (403)
    process = BotProcess({**bot_env, "TELEGRAM_CHAT_ID": f"{TEAM_CHAT},{OTHER_CHAT},{THIRD_CHAT}"})
    await process.start()
    try:
        await api.wait_for("sendPhoto", count=3)  # one to each chat
        for _ in range(3):
            sent_to_c = len(api.of("sendPhoto", THIRD_CHAT))
            await owe_a_slot_again(session_factory)

            async def c_got_another(before: int = sent_to_c) -> bool:
                return len(api.of("sendPhoto", THIRD_CHAT)) > before

            await eventually(c_got_another)
        assert len(api.of("sendPhoto", THIRD_CHAT)) == 4
        assert len(api.of("sendPhoto", TEAM_CHAT)) == 1  # still hanging on the first
        api.hanging_chats.clear()
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    # B is reported once, however many ticks it was due.
    assert process.log.count('"scheduler.chat_unreachable"') == 1
    failed = await fetch_all(
        session_factory, "SELECT chat_id, status FROM posting_history WHERE status = 'failed'"
    )
    assert {row.chat_id for row in failed} == {OTHER_CHAT}
    assert "Traceback" not in process.log
