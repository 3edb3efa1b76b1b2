"""Instagram account care and Auto Post per chat: quota, token refresh and warnings, /live.

The Graph API is respx; Telegram is the recording session; the database is real,
and "two processes" are two service sets on two engines over one database.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import structlog
from aiogram import Bot
from aiogram.methods import AnswerCallbackQuery, EditMessageCaption, SendMessage, SendPhoto
from sqlalchemy.engine import make_url

from bot.app import telegram_session
from bot.config import ConfigError, InstagramFlavour, LogFormat, Settings
from bot.logging import configure_logging
from bot.presentation.notifier import TelegramNotifier
from bot.presentation.texts import AUTOPOST_UNAVAILABLE
from bot.services.accounts.care import RefreshResult
from bot.services.accounts.config import load_account_configs
from bot.services.notifier import ClaimedItem
from bot.telegram_retry import TelegramRetryMiddleware
from db.vocabulary import MediaKind
from tests.helpers.fake_telegram_session import (
    command_update,
)
from tests.helpers.instagram_process import (
    FB_GRAPH,
    IG_GRAPH,
    IG_REFRESH,
    IG_USER,
    NEW_TOKEN,
    OLD_TOKEN,
    T0,
    Process,
    account_process,
    ig_settings,
    process,
)
from tests.helpers.pgproxy import PgProxy
from tests.helpers.support import (
    ALICE,
    OTHER_CHAT,
    TEAM_CHAT,
    TEST_TOKEN,
    Clock,
    execute,
    fetch_all,
    press_update,
    seed_history,
    seed_media,
    seed_queue_item,
)


def quota_route(graph: respx.MockRouter, used: int, base: str = IG_GRAPH) -> respx.Route:
    return graph.get(f"{base}/{IG_USER}/content_publishing_limit").respond(
        json={
            "data": [{"quota_usage": used, "config": {"quota_total": 50, "quota_duration": 86400}}]
        }
    )


async def account_row(sessions: Any) -> Any:
    [row] = await fetch_all(sessions, "SELECT * FROM instagram_accounts")
    return row


# --- 1. the publishing quota -------------------------------------------------------------


async def test_at_the_quota_nothing_is_created_and_the_caption_says_when(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    clock = Clock(datetime.now(UTC))
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        quota = quota_route(graph, 50, FB_GRAPH)
        create = graph.post(f"{FB_GRAPH}/{IG_USER}/media").respond(json={"id": "c1"})
        # We published one through the API 20 hours ago: the window frees up in about 4 h.
        [earlier] = await seed_media(bot.sessions, prefix="earlier")
        await seed_history(
            bot.sessions,
            earlier,
            posting_method="instagram_api",
            acted_at=clock.now - timedelta(hours=20),
        )
        [media_id] = await seed_media(bot.sessions)
        queue_id = await seed_queue_item(bot.sessions, media_id)

        await bot.feed(press_update(queue_id))

        assert quota.call_count == 1
        assert create.call_count == 0
        last = bot.telegram.of(EditMessageCaption)[-1]
        assert "daily Instagram limit is reached (50/50" in last.caption
        assert "frees up in about 4 h" in last.caption
        labels = [b.text for row in last.reply_markup.inline_keyboard for b in row]
        assert "✅ Posted" in labels and "🤖 Auto Post" in labels
        rows = await fetch_all(bot.sessions, "SELECT status FROM posting_queue")
        assert [r.status for r in rows] == ["sent"]
        assert (
            await fetch_all(
                bot.sessions, "SELECT 1 FROM posting_history WHERE media_item_id = :m", m=media_id
            )
            == []
        )


async def test_status_shows_usage_and_days_left(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    clock = Clock(datetime.now(UTC))
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        quota_route(graph, 12, FB_GRAPH)
        graph.get(f"{FB_GRAPH}/debug_token").respond(
            json={
                "data": {"expires_at": int((clock.now + timedelta(days=53, hours=2)).timestamp())}
            }
        )
        await bot.services.token_care.tick()

        await bot.feed(command_update("/status", TEAM_CHAT, ALICE.user))

        reply = bot.telegram.of(SendMessage)[-1].text
        assert "Instagram: 12/50 today" in reply
        assert "Token: 53 days left" in reply


# --- 2. token lifetime --------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedAccounts:
    """Starts account processes that log JSON, the old token redacted, to the captured stderr."""

    settings: Settings
    database_url: str
    capsys: pytest.CaptureFixture[str]

    def start(self, clock: Clock) -> AbstractAsyncContextManager[Process]:
        """Configures logging here, inside the test, where capsys holds sys.stderr."""
        redactor = configure_logging("DEBUG", LogFormat.JSON, secrets=[OLD_TOKEN])
        return account_process(ig_settings(self.settings), self.database_url, clock, redactor.add)

    def logs(self) -> str:
        """What was logged since the last look."""
        return self.capsys.readouterr().err


@pytest.fixture
def logged_accounts(
    settings: Settings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> Iterator[LoggedAccounts]:
    yield LoggedAccounts(settings, database_url, capsys)
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


async def test_refresh_replaces_the_token_and_never_logs_it(
    graph: respx.MockRouter, logged_accounts: LoggedAccounts
) -> None:
    clock = Clock(T0)
    refresh = graph.get(IG_REFRESH).respond(
        json={"access_token": NEW_TOKEN, "token_type": "bearer", "expires_in": 5184000}
    )
    async with logged_accounts.start(clock) as bot:
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.NOT_DUE
        clock.advance(hours=25)
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.REFRESHED

        assert refresh.call_count == 1
        request = refresh.calls.last.request
        # Exactly the documented shape: the token in the query, no header, no version.
        assert "Authorization" not in request.headers
        assert request.method == "GET"
        assert f"{request.url.scheme}://{request.url.host}{request.url.path}" == IG_REFRESH
        assert dict(request.url.params) == {
            "grant_type": "ig_refresh_token",
            "access_token": OLD_TOKEN,
        }
        row = await account_row(bot.sessions)
        assert row.access_token == NEW_TOKEN
        assert row.expires_at == clock.now + timedelta(days=60)
        assert row.expires_at_source == "refresh"
        assert bot.services.instagram_accounts.client_for(TEAM_CHAT).access_token == NEW_TOKEN
        # Not due again until the new token is a day old.
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.NOT_DUE

        # A restart with the same (old) configured token keeps the refreshed one.
        await bot.services.instagram_accounts.sync()
        assert (await account_row(bot.sessions)).access_token == NEW_TOKEN

        structlog.get_logger("test").warning("accident", value=f"token={NEW_TOKEN}")
    logs = logged_accounts.logs()
    assert "instagram.token_refreshed" in logs
    assert OLD_TOKEN not in logs and NEW_TOKEN not in logs
    assert "token=[REDACTED]" in logs


async def test_a_new_configured_token_replaces_the_stored_one(
    settings: Settings, database_url: str
) -> None:
    clock = Clock(T0)
    async with account_process(ig_settings(settings), database_url, clock):
        pass  # the first start stores the configured token
    clock.advance(days=3)
    fresh = ig_settings(settings, instagram_access_token="operator-new-" + "z" * 30)
    async with process(fresh, database_url, clock) as bot:
        await bot.services.instagram_accounts.sync()
        row = await account_row(bot.sessions)
        assert row.access_token == "operator-new-" + "z" * 30
        assert row.token_obtained_at == clock.now
        assert row.expires_at == clock.now + timedelta(days=60)
        assert row.expires_at_source == "assumed"


async def test_refresh_failure_keeps_the_token_and_warns_in_time(
    graph: respx.MockRouter, logged_accounts: LoggedAccounts
) -> None:
    clock = Clock(T0)
    refresh = graph.get(IG_REFRESH).respond(
        400, json={"error": {"message": f"Invalid OAuth access token {OLD_TOKEN}", "code": 190}}
    )
    async with logged_accounts.start(clock) as bot:
        clock.advance(days=2)
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.FAILED
        row = await account_row(bot.sessions)
        assert row.access_token == OLD_TOKEN
        assert row.last_refresh_error
        # Backed off: the next attempt waits an hour.
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.NOT_DUE
        clock.advance(minutes=61)
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.FAILED
        assert refresh.call_count == 2

        # Assumed 60 days from first sight; 7 days before, the admins hear of it.
        clock.now = T0 + timedelta(days=53, hours=1)
        await bot.services.token_care.tick()
        [warning] = bot.telegram.of(SendMessage)
        assert warning.chat_id == TEAM_CHAT
        assert "expires in about 6 days" in warning.text
        assert "Refreshing it automatically failed" in warning.text
        assert OLD_TOKEN not in warning.text
    assert OLD_TOKEN not in logged_accounts.logs()


async def test_two_processes_refresh_once(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    clock = Clock(T0)

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        return httpx.Response(200, json={"access_token": NEW_TOKEN, "expires_in": 5184000})

    refresh = graph.get(IG_REFRESH).mock(side_effect=slow_answer)
    configured = ig_settings(settings)
    async with (
        account_process(configured, database_url, clock) as first,
        process(configured, database_url, clock) as second,
    ):
        await second.services.instagram_accounts.sync()
        clock.advance(days=2)

        results = await asyncio.gather(
            first.services.token_care.refresh(TEAM_CHAT),
            second.services.token_care.refresh(TEAM_CHAT),
        )

        assert sorted(results) == sorted([RefreshResult.REFRESHED, RefreshResult.NOT_DUE])
        assert refresh.call_count == 1
        assert (await account_row(first.sessions)).access_token == NEW_TOKEN
        # The other process takes the stored token on its next care tick.
        await second.services.token_care.tick()
        assert second.services.instagram_accounts.client_for(TEAM_CHAT).access_token == NEW_TOKEN
        assert refresh.call_count == 1


async def test_a_lost_refresh_answer_is_retried_with_the_old_token(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    clock = Clock(T0)
    refresh = graph.get(IG_REFRESH).mock(
        side_effect=[
            httpx.ReadTimeout("answer lost"),  # Instagram may have issued a token
            httpx.Response(200, json={"access_token": NEW_TOKEN, "expires_in": 5184000}),
        ]
    )
    async with account_process(ig_settings(settings), database_url, clock) as bot:
        clock.advance(days=2)
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.FAILED
        assert (await account_row(bot.sessions)).access_token == OLD_TOKEN
        clock.advance(hours=1, minutes=1)
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.REFRESHED
        assert [c.request.url.params["access_token"] for c in refresh.calls] == [
            OLD_TOKEN,
            OLD_TOKEN,
        ]
        assert (await account_row(bot.sessions)).access_token == NEW_TOKEN


async def test_a_crash_mid_refresh_frees_the_lease(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    """A process that took the lease and died: another refreshes once the lease lapses."""
    clock = Clock(T0)
    graph.get(IG_REFRESH).respond(json={"access_token": NEW_TOKEN, "expires_in": 5184000})
    async with account_process(ig_settings(settings), database_url, clock) as bot:
        clock.advance(days=2)
        await execute(
            bot.sessions,
            "UPDATE instagram_accounts SET refresh_claimed_until = :until,"
            " refresh_claim_id = gen_random_uuid()",
            until=clock.now + timedelta(minutes=5),
        )
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.NOT_DUE
        clock.advance(minutes=6)
        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.REFRESHED


async def test_expiry_warnings_are_sent_once_each(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    clock = Clock(T0)
    expires = T0 + timedelta(days=10)
    debug = graph.get(f"{FB_GRAPH}/debug_token").respond(
        json={"data": {"is_valid": True, "expires_at": int(expires.timestamp())}}
    )
    configured = ig_settings(settings, FB_GRAPH)
    async with (
        account_process(configured, database_url, clock) as first,
        process(configured, database_url, clock) as second,
    ):
        await second.services.instagram_accounts.sync()

        sent_in_order: list[str] = []

        async def tick_both() -> list[str]:
            """Both processes tick at once; every warning either sent, in the order sent."""
            before = len(sent_in_order)
            await asyncio.gather(
                first.services.token_care.tick(), second.services.token_care.tick()
            )
            sent = first.telegram.of(SendMessage) + second.telegram.of(SendMessage)
            assert len(sent) - before <= 1, "a warning was sent twice"
            sent_in_order.extend(m.text for m in sent if m.text not in sent_in_order)
            return list(sent_in_order)

        assert await tick_both() == []
        assert (await account_row(first.sessions)).expires_at == expires
        assert debug.calls.last.request.url.params["input_token"] == OLD_TOKEN

        clock.now = expires - timedelta(days=6, hours=12)
        sent = await tick_both()
        assert len(sent) == 1 and "expires in about 6 days" in sent[0]
        assert await tick_both() == sent

        clock.now = expires - timedelta(hours=20)
        sent = await tick_both()
        assert len(sent) == 2 and "expires in about 1 day" in sent[1]

        clock.now = expires + timedelta(minutes=5)
        sent = await tick_both()
        assert len(sent) == 3 and "expired" in sent[2]
        clock.advance(days=3)
        assert await tick_both() == sent

        # A restart of both processes sends nothing again.
        await first.services.instagram_accounts.sync()
        assert await tick_both() == sent

        # Auto Post now answers with what to do, and calls nothing.
        calls = len(graph.calls)
        [media_id] = await seed_media(first.sessions)
        queue_id = await seed_queue_item(first.sessions, media_id)
        await first.feed(press_update(queue_id))
        answer = first.telegram.of(AnswerCallbackQuery)[-1]
        assert "token has expired" in answer.text and "new long-lived token" in answer.text
        assert answer.show_alert
        assert len(graph.calls) == calls
        [row] = await fetch_all(first.sessions, "SELECT status FROM posting_queue")
        assert row.status == "sent"


def _telegram_answer(kind: str) -> Exception:
    from aiogram.exceptions import (
        TelegramForbiddenError,
        TelegramNetworkError,
        TelegramRetryAfter,
        TelegramServerError,
    )

    method = SendMessage(chat_id=TEAM_CHAT, text="")
    return {
        "forbidden": TelegramForbiddenError(method=method, message="kicked"),
        # A flood wait longer than the request middleware rides out: certainly not delivered.
        "long_flood_wait": TelegramRetryAfter(
            method=method, message="Too Many Requests: retry after 600", retry_after=600
        ),
        # The request left: the warning may have arrived.
        "timeout": TelegramNetworkError(method=method, message="Request timeout error"),
        "bad_gateway": TelegramServerError(method=method, message="Bad Gateway"),
    }[kind]


@pytest.mark.parametrize(
    ("answer", "sends"),
    [("forbidden", 2), ("long_flood_wait", 2), ("timeout", 1), ("bad_gateway", 1)],
)
async def test_a_warning_telegram_refused_is_tried_again_and_one_that_may_have_arrived_is_not(
    settings: Settings, database_url: str, graph: respx.MockRouter, answer: str, sends: int
) -> None:
    """A refusal (or a 429) delivered nothing: a later tick sends it. A lost answer: never again.

    Neither is repeated by the request middleware: a send that may have arrived is
    at most once (a duplicate warning is worse than none).
    """
    clock = Clock(T0)
    graph.get(f"{FB_GRAPH}/debug_token").respond(
        json={"data": {"expires_at": int((T0 + timedelta(days=5)).timestamp())}}
    )
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        bot.telegram.fail_next(SendMessage, _telegram_answer(answer))
        await bot.services.token_care.tick()
        refused = sends == 2
        assert ((await account_row(bot.sessions)).warned_7d_at is None) == refused
        await bot.services.token_care.tick()
        assert len(bot.telegram.of(SendMessage)) == sends
        assert (await account_row(bot.sessions)).warned_7d_at == clock.now
        assert all("expires in about" in (m.text or "") for m in bot.telegram.of(SendMessage))


async def test_a_warning_whose_connection_was_never_made_is_tried_again(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    """Every connection refused, repeats included: Telegram never saw it, so a later tick sends it."""
    clock = Clock(T0)
    graph.get(f"{FB_GRAPH}/debug_token").respond(
        json={"data": {"expires_at": int((T0 + timedelta(days=5)).timestamp())}}
    )
    with socket.socket() as probe:  # a port nothing listens on: every connect is refused
        probe.bind(("127.0.0.1", 0))
        closed_port = int(probe.getsockname()[1])
    unreachable = telegram_session(
        settings.model_copy(update={"telegram_api_url": f"http://127.0.0.1:{closed_port}"})
    )
    unreachable.middleware(TelegramRetryMiddleware(backoff_seconds=(0.0, 0.0, 0.0)))
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        offline = replace(bot.services.token_care, bot=Bot(TEST_TOKEN, session=unreachable))
        try:
            await offline.tick()
        finally:
            await unreachable.close()
        assert (await account_row(bot.sessions)).warned_7d_at is None

        await bot.services.token_care.tick()
        await bot.services.token_care.tick()
        [sent] = bot.telegram.of(SendMessage)
        assert "expires in about" in (sent.text or "")
        assert (await account_row(bot.sessions)).warned_7d_at == clock.now


# --- 3. /live -------------------------------------------------------------------------------


async def test_live_matches_media_ids_to_history(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    clock = Clock(datetime.now(UTC))
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        ours = await seed_media(bot.sessions, count=2, prefix="ours")
        for position, media_id in enumerate(ours):
            await seed_history(
                bot.sessions,
                media_id,
                posting_method="instagram_api",
                acted_by_name=["Alice", "Bob"][position],
                instagram_media_id=f"ig-{position}",
            )
        stamp = (clock.now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        stories = graph.get(f"{FB_GRAPH}/{IG_USER}/stories").respond(
            json={
                "data": [
                    {"id": "ig-1", "timestamp": stamp, "media_type": "IMAGE"},
                    {"id": "ig-elsewhere", "timestamp": stamp, "media_type": "VIDEO"},
                    {"id": "ig-0", "timestamp": stamp, "media_type": "IMAGE"},
                ]
            }
        )

        await bot.feed(command_update("/live", TEAM_CHAT, ALICE.user))

        assert stories.call_count == 1
        reply = bot.telegram.of(SendMessage)[-1].text
        assert "3 live on Instagram" in reply
        assert "<code>ours0.jpg</code>, 🤖 by Alice" in reply
        assert "<code>ours1.jpg</code>, 🤖 by Bob" in reply
        assert reply.count("not from this queue") == 1
        assert "3 h ago" in reply


async def test_a_busy_day_of_live_stories_fits_one_message(
    settings: Settings, database_url: str, graph: respx.MockRouter
) -> None:
    """Instagram allows 100 Stories a day; Telegram takes 4,096 characters a message."""
    clock = Clock(datetime.now(UTC))
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        stamp = (clock.now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        graph.get(f"{FB_GRAPH}/{IG_USER}/stories").respond(
            json={
                "data": [
                    {"id": f"ig-{n}", "timestamp": stamp, "media_type": "IMAGE"} for n in range(100)
                ]
            }
        )

        await bot.feed(command_update("/live", TEAM_CHAT, ALICE.user))

        reply = bot.telegram.of(SendMessage)[-1].text
        assert "100 live on Instagram" in reply
        assert len(reply) <= 4096
        assert reply.endswith("more not shown")


async def test_live_without_instagram_explains_how(app: Any) -> None:
    await app.feed(command_update("/live", TEAM_CHAT, ALICE.user))
    await app.services.tasks.drain(5)
    reply = app.telegram.of(SendMessage)[-1].text
    assert "INSTAGRAM_ACCESS_TOKEN" in reply and "INSTAGRAM_ACCOUNTS_FILE" in reply


# --- per-chat accounts ----------------------------------------------------------------------


def test_accounts_file_maps_chats_to_accounts(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "ig_b.token"
    token_file.write_text("file-token-value\n")
    monkeypatch.setenv("IG_TOKEN_A", "env-token-value")
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
[[account]]
chat_id = {TEAM_CHAT}
instagram_user_id = "111"
token_env = "IG_TOKEN_A"

[[account]]
chat_id = {OTHER_CHAT}
instagram_user_id = "222"
token_file = "{token_file}"
graph_url = "https://graph.instagram.com/v21.0"
"""
    )
    # Two chats served: TELEGRAM_CHAT_ID unset, the accounts file names each chat.
    configured = Settings.model_validate(
        {**settings.model_dump(), "telegram_chat_id": None, "instagram_accounts_file": accounts}
    )
    a, b = load_account_configs(configured)
    assert (a.chat_id, a.ig_user_id, a.token, a.flavour) == (
        TEAM_CHAT,
        "111",
        "env-token-value",
        InstagramFlavour.FACEBOOK,
    )
    assert (b.chat_id, b.ig_user_id, b.token, b.flavour) == (
        OTHER_CHAT,
        "222",
        "file-token-value",
        InstagramFlavour.INSTAGRAM,
    )
    assert "env-token-value" not in repr(a)

    only_team = Settings.model_validate({**configured.model_dump(), "telegram_chat_id": TEAM_CHAT})
    with pytest.raises(ConfigError, match="not in TELEGRAM_CHAT_ID"):
        load_account_configs(only_team)
    monkeypatch.delenv("IG_TOKEN_A")
    with pytest.raises(ConfigError, match="IG_TOKEN_A is not set"):
        load_account_configs(configured)
    both = Settings.model_validate({**configured.model_dump(), "instagram_user_id": "1"})
    with pytest.raises(ConfigError, match="either"):
        load_account_configs(both)


def test_flavour_setting_or_derived_from_the_graph_url(settings: Settings) -> None:
    assert (
        ig_settings(settings, IG_GRAPH).instagram_flavour_for(IG_GRAPH)
        is InstagramFlavour.INSTAGRAM
    )
    assert (
        ig_settings(settings, FB_GRAPH).instagram_flavour_for(FB_GRAPH) is InstagramFlavour.FACEBOOK
    )
    chosen = ig_settings(settings, FB_GRAPH, instagram_token_flavour="instagram")
    assert chosen.instagram_flavour_for(FB_GRAPH) is InstagramFlavour.INSTAGRAM


async def test_a_chat_without_an_account_gets_no_robot_button(
    settings: Settings, database_url: str
) -> None:
    async with process(ig_settings(settings), database_url, Clock(T0)) as bot:
        accounts = bot.services.instagram_accounts
        notifier = TelegramNotifier(
            bot.bot, settings.media_dir, instagram=accounts.autopost_available
        )
        keyboards = {}
        for chat_id in (TEAM_CHAT, OTHER_CHAT):
            item = ClaimedItem(
                queue_id=uuid.uuid4(),
                chat_id=chat_id,
                media_item_id=uuid.uuid4(),
                file_path="a.jpg",
                file_name="a.jpg",
                media_kind=MediaKind.PHOTO,
                mime_type="image/jpeg",
                category=None,
                caption=None,
                telegram_file_id="cached-file",
            )
            await notifier.send(item)
            markup = bot.telegram.of(SendPhoto)[-1].reply_markup
            keyboards[chat_id] = [b.text for row in markup.inline_keyboard for b in row]
        assert "🤖 Auto Post" in keyboards[TEAM_CHAT]
        assert "🤖 Auto Post" not in keyboards[OTHER_CHAT]
        refusal = accounts.autopost_refusal(OTHER_CHAT)
        assert refusal is not None
        assert AUTOPOST_UNAVAILABLE[refusal] == "🤖 Auto Post isn't configured for this chat."
        assert accounts.autopost_refusal(TEAM_CHAT) is None


# --- lost answers from the database ----------------------------------------------------------


def nth_commit(n: int) -> Any:
    seen = 0

    def matches(data: bytes) -> bool:
        nonlocal seen
        if b"COMMIT" in data:
            seen += 1
        return seen == n and b"COMMIT" in data

    return matches


@pytest.mark.parametrize(("commit", "step"), [(1, "the lease"), (2, "the new token")])
async def test_a_lost_commit_reply_neither_refreshes_twice_nor_loses_the_token(
    settings: Settings,
    database_url: str,
    proxy: PgProxy,
    graph: respx.MockRouter,
    commit: int,
    step: str,
) -> None:
    clock = Clock(T0)
    refresh = graph.get(IG_REFRESH).respond(json={"access_token": NEW_TOKEN, "expires_in": 5184000})
    url = proxy.url(make_url(database_url).database or "")
    async with account_process(ig_settings(settings), url, clock) as bot:
        clock.advance(days=2)
        proxy.cut_after_reply_to(nth_commit(commit))

        assert await bot.services.token_care.refresh(TEAM_CHAT) is RefreshResult.REFRESHED, step

        assert proxy.cuts == 1
        assert refresh.call_count == 1
        row = await account_row(bot.sessions)
        assert row.access_token == NEW_TOKEN
        assert row.refresh_claim_id is None


async def test_a_lost_commit_reply_of_a_warning_mark_still_sends_it_once(
    settings: Settings, database_url: str, proxy: PgProxy, graph: respx.MockRouter
) -> None:
    clock = Clock(T0)
    graph.get(f"{FB_GRAPH}/debug_token").respond(
        json={"data": {"expires_at": int((T0 + timedelta(days=30)).timestamp())}}
    )
    url = proxy.url(make_url(database_url).database or "")
    async with account_process(ig_settings(settings, FB_GRAPH), url, clock) as bot:
        await bot.services.token_care.tick()
        clock.advance(days=24)
        marked = False

        def commit_after_the_mark(data: bytes) -> bool:
            nonlocal marked
            marked = marked or (b"UPDATE instagram_accounts SET warned_7d_at" in data)
            return marked and b"COMMIT" in data

        proxy.cut_after_reply_to(commit_after_the_mark)
        await bot.services.token_care.tick()
        await bot.services.token_care.tick()

        assert proxy.cuts == 1
        [warning] = bot.telegram.of(SendMessage)
        assert "expires in about 6 days" in warning.text
        assert (await account_row(bot.sessions)).warned_7d_at == clock.now


def test_a_broken_accounts_file_stops_the_process_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import EXIT_CONFIG, main

    broken = tmp_path / "instagram.toml"
    broken.write_text(f'[[account]]\nchat_id = {TEAM_CHAT}\ninstagram_user_id = "1"\n')
    monkeypatch.setenv("BOT_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_ID", str(TEAM_CHAT))
    monkeypatch.setenv("INSTAGRAM_ACCOUNTS_FILE", str(broken))
    monkeypatch.chdir(tmp_path)

    assert main(["check"]) == EXIT_CONFIG
    assert "give exactly one of token_env or token_file" in capsys.readouterr().err


async def test_a_failing_statement_never_shows_the_token(session_factory: Any) -> None:
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failure:
        # No such chat: the foreign key refuses the row that carries the token.
        await execute(
            session_factory,
            "INSERT INTO instagram_accounts (chat_id, ig_user_id, access_token, flavour,"
            " configured_token_sha256, token_obtained_at)"
            " VALUES (1, '1', :token, 'facebook', 'x', now())",
            token=OLD_TOKEN,
        )
    assert OLD_TOKEN not in str(failure.value) and OLD_TOKEN not in repr(failure.value)
