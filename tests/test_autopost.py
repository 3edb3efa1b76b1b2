"""🤖 Auto Post through a respx-mocked Graph API, against the real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from aiogram.methods import AnswerCallbackQuery, EditMessageCaption
from sqlalchemy.exc import OperationalError

from bot.config import Settings
from bot.keyboards import QueueAction, QueueCallback, queue_keyboard
from db.repositories import PressRepository
from tests.support import (
    TEAM_CHAT,
    TEST_TOKEN,
    TestApp,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
)
from tests.telegram_fake import callback_update, queue_message, user

GRAPH = "https://graph.test/v21.0"
IG_USER = "1789"
IG_TOKEN = "EAAGsecret-token-value"
CAPTION = "Hi\n\n📄 item0.jpg · #cat"
ALICE = user(7, "Alice")
BOB = user(8, "Bob")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with Instagram configured."""
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "bot_token": TEST_TOKEN,
            "instagram_user_id": IG_USER,
            "instagram_access_token": IG_TOKEN,
            "media_public_base_url": "https://cdn.test/media/",
            "instagram_graph_url": GRAPH,
            "instagram_publish_timeout_seconds": 0.5,
            "instagram_poll_interval_seconds": 0.01,
        }
    )


@pytest.fixture
def graph() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=GRAPH, assert_all_called=False) as router:
        # Every Auto Post reads the publishing quota first (issue 14).
        router.get(f"/{IG_USER}/content_publishing_limit").respond(
            json={"data": [{"quota_usage": 3, "config": {"quota_total": 50}}]}
        )
        yield router


def happy(graph: respx.MockRouter, statuses: list[str] | None = None) -> dict[str, Any]:
    routes = {
        "create": graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"}),
        "status": graph.get("/container-1").mock(
            side_effect=[
                httpx.Response(200, json={"status_code": s})
                for s in (statuses or ["IN_PROGRESS", "FINISHED"])
            ]
        ),
        "publish": graph.post(f"/{IG_USER}/media_publish").respond(json={"id": "ig-media-9"}),
    }
    return routes


async def _queued(app: TestApp) -> uuid.UUID:
    [media_id] = await seed_media(app.sessions)
    return await seed_queue_item(app.sessions, media_id)


def _press(queue_id: uuid.UUID, action: QueueAction = QueueAction.AUTOPOST, who=ALICE):
    data = QueueCallback(action=action, queue_id=queue_id).pack()
    return callback_update(
        data, queue_message(TEAM_CHAT, 500, CAPTION, queue_keyboard(queue_id, instagram=True)), who
    )


def _captions(app: TestApp) -> list[str]:
    return [edit.caption for edit in app.telegram.of(EditMessageCaption)]


async def _history(app: TestApp) -> list[Any]:
    return await fetch_all(
        app.sessions,
        "SELECT status, posting_method, instagram_media_id, acted_by_name FROM posting_history",
    )


async def _queue_status(app: TestApp) -> list[str]:
    return [r.status for r in await fetch_all(app.sessions, "SELECT status FROM posting_queue")]


async def test_button_is_offered(app: TestApp) -> None:
    labels = [
        b.text for row in queue_keyboard(uuid.uuid4(), instagram=True).inline_keyboard for b in row
    ]
    assert "🤖 Auto Post" in labels


async def test_publishes_and_records_once(app: TestApp, graph: respx.MockRouter) -> None:
    routes = happy(graph)
    queue_id = await _queued(app)

    await app.feed(_press(queue_id))

    assert [tuple(r) for r in await _history(app)] == [
        ("posted", "instagram_api", "ig-media-9", "Alice")
    ]
    [media] = await fetch_all(app.sessions, "SELECT times_posted FROM media_items")
    assert media.times_posted == 1
    [lock] = await fetch_all(app.sessions, "SELECT reason FROM media_locks")
    assert lock.reason == "recent_post"
    assert await _queue_status(app) == []
    captions = _captions(app)
    assert captions[0].endswith("⏳ Publishing to Instagram…")
    assert captions[-1] == f"{CAPTION}\n\n✅ Posted to Instagram by Alice"
    assert app.telegram.of(EditMessageCaption)[-1].reply_markup is None

    create = routes["create"].calls.last.request
    assert dict(httpx.QueryParams(create.content.decode())) == {
        "media_type": "STORIES",
        "image_url": "https://cdn.test/media/cat/item0.jpg",
    }
    assert create.headers["Authorization"] == f"Bearer {IG_TOKEN}"
    assert routes["status"].call_count == 2
    assert routes["publish"].call_count == 1
    for call in graph.calls:
        assert IG_TOKEN not in str(call.request.url)
    assert all(IG_TOKEN not in caption for caption in captions)


async def test_dry_run_does_everything_but_publish(app: TestApp, graph: respx.MockRouter) -> None:
    routes = happy(graph)
    await seed_chat(app.sessions, dry_run=True)
    queue_id = await _queued(app)

    await app.feed(_press(queue_id))

    assert routes["create"].call_count == 1 and routes["publish"].call_count == 0
    assert await _history(app) == []
    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert "Dry run" in last.caption and last.reply_markup is not None


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        (
            lambda g: g.post(f"/{IG_USER}/media").respond(
                400, json={"error": {"code": 4, "message": "limit"}}
            ),
            "rate limit",
        ),
        (
            lambda g: g.post(f"/{IG_USER}/media").respond(
                400, json={"error": {"code": 190, "message": "expired"}}
            ),
            "access token has expired",
        ),
        (
            lambda g: g.post(f"/{IG_USER}/media").mock(side_effect=httpx.ConnectError("down")),
            "could not be reached",
        ),
        (
            lambda g: (
                g.post(f"/{IG_USER}/media").respond(json={"id": "container-1"}),
                g.get("/container-1").respond(json={"status_code": "ERROR"}),
            ),
            "could not process the media",
        ),
        (
            lambda g: (
                g.post(f"/{IG_USER}/media").respond(json={"id": "container-1"}),
                g.get("/container-1").respond(json={"status_code": "EXPIRED"}),
            ),
            "upload expired",
        ),
        (
            lambda g: (
                g.post(f"/{IG_USER}/media").respond(json={"id": "container-1"}),
                g.get("/container-1").respond(json={"status_code": "IN_PROGRESS"}),
            ),
            "took too long",
        ),
        (
            lambda g: (
                g.post(f"/{IG_USER}/media").respond(json={"id": "container-1"}),
                g.get("/container-1").respond(json={"status_code": "FINISHED"}),
                g.post(f"/{IG_USER}/media_publish").respond(400, json={"error": {"code": 613}}),
            ),
            "rate limit",
        ),
    ],
)
async def test_failure_names_the_cause_and_keeps_the_item(
    app: TestApp, graph: respx.MockRouter, setup: Any, cause: str
) -> None:
    setup(graph)
    queue_id = await _queued(app)

    await app.feed(_press(queue_id))

    assert await _history(app) == []
    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert "Auto Post failed" in last.caption and cause in last.caption
    assert last.reply_markup == queue_keyboard(queue_id, instagram=True)
    assert IG_TOKEN not in last.caption
    # The item is still actionable: ✅ Posted now works.
    await app.feed(_press(queue_id, QueueAction.POSTED))
    assert [r.posting_method for r in await _history(app)] == ["telegram_manual"]


async def test_posted_during_publishing_is_told_to_wait(
    app: TestApp, graph: respx.MockRouter
) -> None:
    release = asyncio.Event()
    polling = asyncio.Event()

    async def slow_status(request: httpx.Request) -> httpx.Response:
        polling.set()
        await release.wait()
        return httpx.Response(200, json={"status_code": "FINISHED"})

    graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
    graph.get("/container-1").mock(side_effect=slow_status)
    graph.post(f"/{IG_USER}/media_publish").respond(json={"id": "ig-media-9"})
    queue_id = await _queued(app)

    publishing = asyncio.create_task(app.feed(_press(queue_id)))
    await polling.wait()
    await app.feed(_press(queue_id, QueueAction.POSTED, BOB))
    await app.feed(_press(queue_id, QueueAction.SKIP, BOB))
    release.set()
    await publishing

    assert [r.posting_method for r in await _history(app)] == ["instagram_api"]
    toasts = [a.text for a in app.telegram.of(AnswerCallbackQuery)]
    assert toasts.count("🤖 An Auto Post of this item is in progress.") == 2


async def test_auto_post_after_posted_is_already(app: TestApp, graph: respx.MockRouter) -> None:
    routes = happy(graph)
    queue_id = await _queued(app)
    await app.feed(_press(queue_id, QueueAction.POSTED, BOB))
    await app.feed(_press(queue_id))
    assert routes["create"].call_count == 0
    assert [a.text for a in app.telegram.of(AnswerCallbackQuery)][-1] == "✅ Already posted by Bob"
    assert len(await _history(app)) == 1


async def test_published_but_not_recorded_never_publishes_twice(
    app: TestApp, graph: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = happy(graph)
    queue_id = await _queued(app)

    async def lost(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("WITH claimed", {}, ConnectionResetError("reset"))

    monkeypatch.setattr(PressRepository, "record", lost)
    await app.feed(_press(queue_id))
    assert await _history(app) == []
    [row] = await fetch_all(app.sessions, "SELECT status, instagram_media_id FROM posting_queue")
    assert (row.status, row.instagram_media_id) == ("publishing", "ig-media-9")
    assert "not recorded yet" in _captions(app)[-1]

    monkeypatch.undo()
    await app.feed(_press(queue_id))

    assert routes["publish"].call_count == 1
    assert [tuple(r) for r in await _history(app)] == [
        ("posted", "instagram_api", "ig-media-9", "Alice")
    ]
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")


async def test_not_configured_says_so(app: TestApp) -> None:
    app.dispatcher["autopost_service"] = None
    queue_id = await _queued(app)
    await app.feed(_press(queue_id))
    assert [a.text for a in app.telegram.of(AnswerCallbackQuery)] == [
        "🤖 Auto Post isn't configured for this chat."
    ]
    assert json.dumps(await _queue_status(app)) == '["sent"]'


async def test_the_token_is_never_logged(
    app: TestApp,
    graph: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph.post(f"/{IG_USER}/media").respond(
        400, json={"error": {"code": 190, "message": f"Invalid OAuth access token {IG_TOKEN}"}}
    )
    queue_id = await _queued(app)
    with caplog.at_level("DEBUG"):
        await app.feed(_press(queue_id))
    output = capsys.readouterr()
    assert "Auto Post failed" in _captions(app)[-1]
    assert IG_TOKEN not in output.out + output.err + caplog.text
    assert all(IG_TOKEN not in caption for caption in _captions(app))
