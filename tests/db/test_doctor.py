"""`python -m bot check`: each failing case names the cause and the fix, and sets the exit code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from bot.config import Settings
from bot.doctor import timeouts
from bot.doctor.database import pooler_finding
from tests.helpers.bot_process import run_bot_command
from tests.helpers.check import line_of, run_check
from tests.helpers.fake_bot_api import BOT_USER, FakeBotApi
from tests.helpers.support import (
    TEAM_CHAT,
    TEST_TOKEN,
    execute,
    fetch_all,
    seed_chat,
    seed_media,
    trickling_server,
)

GRAPH = "https://graph.facebook.com/v21.0"
IG_USER = "17841400000000000"
IG_TOKEN = "EAAG-secret-token"
CDN = "https://cdn.example/media"


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeouts, "NETWORK_TIMEOUT_SECONDS", 1.0)


@pytest.fixture
async def indexed(session_factory: Any) -> list[Any]:
    await seed_chat(session_factory)
    return await seed_media(session_factory, count=2)


def with_instagram(settings: Settings) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "_env_file": None,
            "bot_token": TEST_TOKEN,
            "instagram_user_id": IG_USER,
            "instagram_access_token": IG_TOKEN,
            "media_public_base_url": CDN,
        }
    )


def changed(settings: Settings, **values: Any) -> Settings:
    return settings.model_copy(update=values)


def subjects(lines: list[str]) -> list[str]:
    return [line.split(maxsplit=1)[1].split(":")[0] for line in lines[:-1]]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def graph(
    account: httpx.Response | None = None,
    media: httpx.Response | None = None,
    insights: httpx.Response | None = None,
) -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{GRAPH}/{IG_USER}").mock(
            return_value=account or httpx.Response(200, json={"id": IG_USER, "username": "team"})
        )
        router.get(f"{GRAPH}/{IG_USER}/insights").mock(
            return_value=insights or httpx.Response(200, json={"data": []})
        )
        router.head(f"{CDN}/cat/item0.jpg").mock(
            return_value=media or httpx.Response(200, headers={"content-type": "image/jpeg"})
        )
        yield router


# -- the all-green case ---------------------------------------------------------------


async def test_all_green_without_instagram(healthy: Settings, indexed: list[Any]) -> None:
    code, lines = await run_check(healthy)
    assert code == 0, lines
    assert subjects(lines) == [
        "settings",
        "telegram",
        "webhook",
        f"chat {TEAM_CHAT}",
        "database",
        "pooler",
        "schema",
        "media",
        f"library {TEAM_CHAT}",
        "instagram",
    ]
    assert all(line.startswith("PASS ") for line in lines[:-1]), lines
    assert lines[-1] == "check passed"
    assert "token works: @storyqueue_bot (id 42)" in line_of(lines, "telegram")
    assert "administrator" in line_of(lines, f"chat {TEAM_CHAT}")
    assert "2 item(s) indexed, 2 eligible now" in line_of(lines, f"library {TEAM_CHAT}")
    assert "PostgreSQL" in line_of(lines, "database")


async def test_all_green_with_instagram(healthy: Settings, indexed: list[Any]) -> None:
    with graph() as router:
        code, lines = await run_check(with_instagram(healthy))
        [account, insights] = [c.request for c in router.calls if c.request.method == "GET"]
    assert code == 0, lines
    assert "token valid for @team" in line_of(lines, "instagram")
    assert "Story results are kept" in line_of(lines, "instagram insights")
    assert insights.headers["authorization"] == f"Bearer {IG_TOKEN}"
    assert line_of(lines, "media url").startswith("PASS ")
    assert "image/jpeg" in line_of(lines, "media url")
    assert account.headers["authorization"] == f"Bearer {IG_TOKEN}"
    assert IG_TOKEN not in "\n".join(lines)


@pytest.mark.parametrize(
    ("extra", "code", "last"),
    [({}, 0, "check passed"), ({"BOT_TOKEN": "999:" + "B" * 35}, 1, "check failed: 1 problem(s)")],
    ids=["green", "rejected-token"],
)
async def test_the_real_command(
    healthy: Settings, indexed: list[Any], extra: dict[str, str], code: int, last: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DB_", "LOG_", "INSTAGRAM"))},
        "BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_CHAT_ID": str(TEAM_CHAT),
        "TELEGRAM_API_URL": str(healthy.telegram_api_url),
        "DATABASE_URL": str(healthy.database_url),
        "DATA_DIR": str(healthy.data_dir),
        "MEDIA_DIR": str(healthy.media_dir),
        **extra,
    }
    returned, out, err = await run_bot_command(env, "check", timeout=60)
    lines = out.strip().splitlines()
    assert returned == code, (out, err)
    assert lines[-1].startswith(last)
    assert sum(line.startswith("PASS ") for line in lines) == (10 if code == 0 else 7)
    assert "Traceback" not in err


# -- Telegram -------------------------------------------------------------------------


async def test_a_webhook_is_a_warning_and_check_removes_nothing(
    api: FakeBotApi, healthy: Settings, indexed: list[Any]
) -> None:
    api.set_webhook(f"https://old.example/{TEST_TOKEN}/hook")
    code, lines = await run_check(healthy)
    assert code == 0
    line = line_of(lines, "webhook")
    assert line.startswith("WARN ") and "https://old.example/[REDACTED]/hook" in line
    assert "removes it at startup" in line and TEST_TOKEN not in line
    assert api.webhook_url and not api.of("deleteWebhook")
    assert lines[-1] == "check passed (1 warning(s))"


async def test_a_rejected_token(healthy: Settings, indexed: list[Any]) -> None:
    code, lines = await run_check(changed(healthy, bot_token=SecretStr("999:" + "B" * 35)))
    assert code == 1
    line = line_of(lines, "telegram")
    assert (
        line.startswith("FAIL ") and "401" in line and "Fix: copy the token from @BotFather" in line
    )
    assert "webhook" not in subjects(lines)  # nothing more is asked with a bad token
    assert lines[-1].startswith("check failed: 1 problem(s)")


async def test_a_token_that_is_not_one(healthy: Settings, indexed: list[Any]) -> None:
    code, lines = await run_check(changed(healthy, bot_token=SecretStr("not-a-token")))
    assert code == 1
    assert "BOT_TOKEN is not a bot token" in line_of(lines, "telegram")


async def test_missing_settings_are_named(healthy: Settings, indexed: list[Any]) -> None:
    code, lines = await run_check(changed(healthy, bot_token=None))
    assert code == 1
    assert "BOT_TOKEN must be set" in line_of(lines, "settings")
    assert "telegram" not in subjects(lines)

    code, lines = await run_check(changed(healthy, telegram_chat_id=None))
    assert code == 1
    assert "TELEGRAM_CHAT_ID must be set" in line_of(lines, "settings")
    assert line_of(lines, "telegram").startswith("PASS ")  # the token is still checked


async def test_telegram_unreachable(
    healthy: Settings, indexed: list[Any], closed_port: int
) -> None:
    code, lines = await run_check(
        changed(healthy, telegram_api_url=f"http://127.0.0.1:{closed_port}")
    )
    assert code == 1
    line = line_of(lines, "telegram")
    assert line.startswith("FAIL ") and "did not answer" in line and "TELEGRAM_API_URL" in line


async def test_a_silent_telegram_does_not_hang_the_check(
    healthy: Settings, indexed: list[Any]
) -> None:
    async def accept_and_say_nothing(reader: Any, writer: Any) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code, lines = await run_check(changed(healthy, telegram_api_url=f"http://127.0.0.1:{port}"))
    finally:
        server.close()
    assert code == 1
    assert "did not answer" in line_of(lines, "telegram")
    assert line_of(lines, "schema").startswith("PASS ")  # the rest still ran


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda api: api.restrict(TEAM_CHAT, can_send_videos=False), "cannot send videos"),
        (
            lambda api: api.restrict(TEAM_CHAT, can_send_photos=False, can_send_messages=False),
            "cannot send messages, send photos",
        ),
        (
            lambda api: (
                api.members.update({TEAM_CHAT: {"status": "member", "user": BOT_USER}}),
                api.chats.update({TEAM_CHAT: {"permissions": {"can_send_videos": False}}}),
            ),
            "cannot send videos",
        ),
        (
            lambda api: api.members.update({TEAM_CHAT: {"status": "left", "user": BOT_USER}}),
            "is not a member",
        ),
        (lambda api: api.restrict(TEAM_CHAT, is_member=False), "is not a member"),
        (lambda api: api.missing_chats.add(TEAM_CHAT), "chat not found"),
        (
            lambda api: (
                api.members.update({TEAM_CHAT: {"status": "member", "user": BOT_USER}}),
                api.chats.update({TEAM_CHAT: {"type": "channel"}}),
            ),
            "cannot post messages, edit its messages",
        ),
    ],
    ids=["no-videos", "no-photos", "chat-permissions", "left", "removed", "not-found", "channel"],
)
async def test_missing_chat_rights_are_named(
    api: FakeBotApi, healthy: Settings, indexed: list[Any], setup: Any, expected: str
) -> None:
    setup(api)
    code, lines = await run_check(healthy)
    assert code == 1
    line = line_of(lines, f"chat {TEAM_CHAT}")
    assert line.startswith("FAIL ") and expected in line and "Fix: " in line
    [member] = api.of("getChatMember") or [None]
    if member is not None:
        assert int(member.params["user_id"]) == BOT_USER["id"]


# -- Database and media ---------------------------------------------------------------


async def test_a_stopped_database(healthy: Settings, closed_port: int) -> None:
    url = f"postgresql+asyncpg://u:pw@127.0.0.1:{closed_port}/storyqueue"
    code, lines = await run_check(changed(healthy, database_url=url))
    assert code == 1
    line = line_of(lines, "database")
    assert line.startswith("FAIL ") and "unreachable" in line and "Fix: start PostgreSQL" in line
    assert "pw" not in line
    assert "schema" not in subjects(lines)
    assert line_of(lines, "telegram").startswith("PASS ")


async def test_a_silent_database_does_not_hang_the_check(healthy: Settings) -> None:
    async def accept_and_say_nothing(reader: Any, writer: Any) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"postgresql+asyncpg://u:pw@127.0.0.1:{port}/storyqueue"
        code, lines = await run_check(changed(healthy, database_url=url))
    finally:
        server.close()
    assert code == 1
    assert "unreachable" in line_of(lines, "database")


async def test_a_pooler_url_without_db_pgbouncer(healthy: Settings, closed_port: int) -> None:
    url = "postgresql+asyncpg://u:pw@127.0.0.1:6432/storyqueue"
    code, lines = await run_check(changed(healthy, database_url=url))
    assert code == 1
    line = line_of(lines, "pooler")
    assert line.startswith("FAIL ") and "Fix: set DB_PGBOUNCER=true" in line


@pytest.mark.parametrize(
    ("url", "pgbouncer", "mark"),
    [
        ("postgresql+asyncpg://u:p@ep-cool-1-pooler.eu-central-1.aws.neon.tech/db", False, "FAIL"),
        ("postgresql+asyncpg://u:p@ep-cool-1-pooler.eu-central-1.aws.neon.tech/db", True, "PASS"),
        ("postgresql+asyncpg://u:p@db.example:6432/db", False, "FAIL"),
        # Supabase's transaction pooler (Supavisor); its session pooler is on 5432.
        ("postgresql+asyncpg://u:p@aws-0-eu-central-1.pooler.supabase.com:6543/db", False, "FAIL"),
        ("postgresql+asyncpg://u:p@aws-0-eu-central-1.pooler.supabase.com:5432/db", False, "PASS"),
        ("postgresql+asyncpg://u:p@ep-cool-1.eu-central-1.aws.neon.tech/db", True, "WARN"),
        ("postgresql+asyncpg://u:p@ep-cool-1.eu-central-1.aws.neon.tech/db", False, "PASS"),
    ],
)
def test_pooler_heuristic(url: str, pgbouncer: bool, mark: str) -> None:
    settings = Settings(_env_file=None, database_url=url, db_pgbouncer=pgbouncer)  # type: ignore[call-arg]
    assert pooler_finding(settings).mark == mark


async def test_a_database_behind_head(healthy: Settings, empty_database_url: str) -> None:
    code, lines = await run_check(changed(healthy, database_url=empty_database_url))
    assert code == 1
    line = line_of(lines, "schema")
    assert line.startswith("FAIL ") and "Fix: run `python -m bot migrate`" in line
    assert f"library {TEAM_CHAT}" not in subjects(lines)


async def test_a_missing_media_dir(healthy: Settings, indexed: list[Any], tmp_path: Path) -> None:
    code, lines = await run_check(changed(healthy, media_dir=tmp_path / "nowhere"))
    assert code == 1
    line = line_of(lines, "media")
    assert line.startswith("FAIL ") and "is not a folder" in line


async def test_a_media_dir_that_cannot_be_looked_at_is_one_line(
    healthy: Settings, indexed: list[Any], tmp_path: Path
) -> None:
    """stat() refusing MEDIA_DIR (no permission on a parent, a name too long) is the media line."""
    code, lines = await run_check(changed(healthy, media_dir=tmp_path / ("m" * 300)))
    assert code == 1
    line = line_of(lines, "media")
    assert line.startswith("FAIL ") and "cannot be looked at" in line, lines
    assert line_of(lines, "database").startswith("PASS ")
    assert len(subjects(lines)) == len(set(subjects(lines))), lines


async def test_nothing_indexed_or_nothing_eligible_is_a_warning(
    healthy: Settings, session_factory: Any
) -> None:
    await seed_chat(session_factory)
    code, lines = await run_check(healthy)
    assert code == 0
    assert "Fix: run `python -m bot index`" in line_of(lines, f"library {TEAM_CHAT}")

    [media_id] = await seed_media(session_factory)
    await fetch_all(
        session_factory,
        "INSERT INTO media_locks (id, media_item_id, reason, locked_until)"
        " VALUES (gen_random_uuid(), :id, 'recent_post', now() + interval '1 day') RETURNING id",
        id=media_id,
    )
    code, lines = await run_check(healthy)
    line = line_of(lines, f"library {TEAM_CHAT}")
    assert code == 0 and line.startswith("WARN ") and "1 item(s) indexed, none eligible" in line


# -- Instagram ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "refusal",
    [
        {"code": 10, "message": "(#10) Application does not have permission for this action"},
        {"code": 200, "message": "(#200) Permissions error"},
    ],
    ids=["code-10", "code-200"],
)
async def test_a_token_without_the_insights_permission_is_a_warning(
    healthy: Settings, indexed: list[Any], refusal: dict[str, Any]
) -> None:
    with graph(insights=httpx.Response(403, json={"error": refusal})):
        code, lines = await run_check(with_instagram(healthy))
    assert code == 0, lines
    line = line_of(lines, "instagram insights")
    assert line.startswith("WARN ") and "Story results are off" in line
    assert "instagram_business_manage_insights" in line


async def test_without_a_public_media_url_the_token_and_insights_are_still_checked(
    healthy: Settings, indexed: list[Any]
) -> None:
    """Story results are read without Auto Post, so their permission is still reported."""
    with graph():
        code, lines = await run_check(changed(with_instagram(healthy), media_public_base_url=None))
    assert code == 0, lines
    assert "token valid for @team" in line_of(lines, "instagram")
    assert "Story results are kept" in line_of(lines, "instagram insights")
    media = line_of(lines, "media url")
    assert media.startswith("WARN ") and "MEDIA_PUBLIC_BASE_URL missing" in media


async def test_an_expired_instagram_token(healthy: Settings, indexed: list[Any]) -> None:
    expired = httpx.Response(
        400,
        json={
            "error": {
                "message": "Error validating access token: Session has expired",
                "type": "OAuthException",
                "code": 190,
            }
        },
    )
    with graph(account=expired):
        code, lines = await run_check(with_instagram(healthy))
    assert code == 1
    line = line_of(lines, "instagram")
    assert line.startswith("FAIL ") and "expired" in line
    assert "Fix: renew INSTAGRAM_ACCESS_TOKEN" in line


@pytest.mark.parametrize(
    ("answer", "mark", "shown"),
    [
        (httpx.Response(401, json={}), "FAIL", "expired or invalid (HTTP 401)"),
        (
            httpx.Response(400, json={"error": {"message": "Bad id", "code": 100}}),
            "FAIL",
            "the Graph API refused (Bad id, error 100)",
        ),
        (httpx.Response(503, text="down"), "FAIL", "the Graph API refused (HTTP 503)"),
    ],
    ids=["bare-401", "code-100", "http-503"],
)
async def test_graph_refusals_are_worded_by_the_client(
    healthy: Settings, indexed: list[Any], answer: httpx.Response, mark: str, shown: str
) -> None:
    """The doctor reads the account through the bot's Graph client and words its errors."""
    with graph(account=answer):
        code, lines = await run_check(with_instagram(healthy))
    assert code == 1
    line = line_of(lines, "instagram")
    assert line.startswith(f"{mark} ") and shown in line, line


@pytest.mark.parametrize(
    ("media", "shown"),
    [
        (httpx.Response(404, headers={"content-type": "text/html"}), "404 text/html"),
        (httpx.Response(200, headers={"content-type": "text/html"}), "200 text/html"),
        (httpx.Response(200), "200 no content type"),
    ],
)
async def test_media_urls_instagram_cannot_fetch(
    healthy: Settings, indexed: list[Any], media: httpx.Response, shown: str
) -> None:
    with graph(media=media):
        code, lines = await run_check(with_instagram(healthy))
    assert code == 1
    line = line_of(lines, "media url")
    assert line.startswith("FAIL ") and f"{CDN}/cat/item0.jpg: {shown}" in line
    assert "Fix: serve MEDIA_DIR publicly" in line


async def test_an_unreachable_media_host(healthy: Settings, indexed: list[Any]) -> None:
    with graph() as router:
        router.head(f"{CDN}/cat/item0.jpg").mock(side_effect=httpx.ConnectTimeout("slow"))
        code, lines = await run_check(with_instagram(healthy))
    assert code == 1
    assert "did not answer (ConnectTimeout)" in line_of(lines, "media url")


async def test_a_trickling_graph_server_does_not_hang_the_check(
    healthy: Settings, indexed: list[Any]
) -> None:
    """A server that answers one byte at a time never trips a per-read timeout."""
    async with trickling_server() as base:
        configured = changed(
            with_instagram(healthy), instagram_graph_url=base, media_public_base_url=f"{base}/media"
        )
        code, lines = await run_check(configured)
    assert code == 1
    assert "did not answer" in line_of(lines, "instagram")
    assert "did not answer" in line_of(lines, "media url")


async def test_partly_configured_instagram_is_a_warning(
    healthy: Settings, indexed: list[Any]
) -> None:
    code, lines = await run_check(changed(healthy, instagram_user_id=IG_USER))
    assert code == 0
    line = line_of(lines, "instagram")
    assert line.startswith("WARN ") and "INSTAGRAM_ACCESS_TOKEN, MEDIA_PUBLIC_BASE_URL" in line


async def test_the_refreshed_token_the_bot_uses_is_the_one_checked(
    healthy: Settings, indexed: list[Any], session_factory: Any
) -> None:
    """After a refresh the configured token may be long expired while Auto Post works."""
    import hashlib

    refreshed = "IGAA-refreshed-token-in-the-database"
    await execute(
        session_factory,
        "INSERT INTO instagram_accounts (chat_id, ig_user_id, access_token, flavour,"
        " configured_token_sha256, token_obtained_at, expires_at_source)"
        " VALUES (:chat, :user, :token, 'facebook', :sha, now(), 'refresh')",
        chat=TEAM_CHAT,
        user=IG_USER,
        token=refreshed,
        sha=hashlib.sha256(IG_TOKEN.encode()).hexdigest(),
    )
    expired = httpx.Response(400, json={"error": {"message": "Session has expired", "code": 190}})

    def by_token(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == f"Bearer {refreshed}":
            return httpx.Response(200, json={"id": IG_USER, "username": "team"})
        return expired

    with graph() as router:
        router.routes[0].mock(side_effect=by_token)
        code, lines = await run_check(with_instagram(healthy))
        asked = [call.request for call in router.calls if call.request.method == "GET"]
    assert code == 0, lines
    assert line_of(lines, "instagram").startswith("PASS ")
    # The account and its insights permission, both with the token in use.
    assert [request.headers["authorization"] for request in asked] == [f"Bearer {refreshed}"] * 2
    assert refreshed not in "\n".join(lines)


async def test_accounts_from_the_accounts_file_are_checked(
    healthy: Settings, indexed: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQ_TEST_IG_TOKEN", IG_TOKEN)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
[[account]]
chat_id = {TEAM_CHAT}
instagram_user_id = "{IG_USER}"
token_env = "SQ_TEST_IG_TOKEN"
"""
    )
    configured = changed(healthy, instagram_accounts_file=accounts, media_public_base_url=CDN)
    with graph() as router:
        code, lines = await run_check(configured)
        [account, _] = [call.request for call in router.calls if call.request.method == "GET"]
    assert code == 0, lines
    line = line_of(lines, f"instagram chat {TEAM_CHAT}")
    assert line.startswith("PASS ") and "token valid for @team" in line
    assert line_of(lines, f"instagram chat {TEAM_CHAT} insights").startswith("PASS ")
    assert line_of(lines, "media url").startswith("PASS ")
    assert account.headers["authorization"] == f"Bearer {IG_TOKEN}"


# -- the liveness probe ---------------------------------------------------------------


async def test_live_asks_neither_telegram_nor_instagram(
    api: FakeBotApi, healthy: Settings, indexed: list[Any]
) -> None:
    code, lines = await run_check(healthy, live=True)
    assert code == 1  # the scheduler never ticked
    assert subjects(lines) == ["settings", "database", "schema", "scheduler"]
    assert "heartbeat is missing" in line_of(lines, "scheduler")
    assert api.calls == []
