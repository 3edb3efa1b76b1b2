"""🤖 Auto Post through a respx-mocked Graph API, against the real database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import structlog
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, EditMessageCaption, EditMessageText
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.app import build_app, build_services, create_bot
from bot.config import Settings
from bot.database import Database
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from bot.services.autopost import AutoPostClaim, AutoPostResult
from db.engine import EngineOptions, create_engine, create_session_factory
from db.repositories import PressRepository
from db.repositories.press import PRESS_STATEMENT_NAME
from tests.helpers.fake_graph import GraphState, install_respx
from tests.helpers.fake_telegram_session import (
    RecordingSession,
    callback_update,
    text_message,
)
from tests.helpers.pgproxy import PgProxy
from tests.helpers.support import (
    ALICE,
    BOB,
    BOB_AND_CO,
    CAPTION,
    OTHER_CHAT,
    TEAM_CHAT,
    TEST_TOKEN,
    TestApp,
    fetch_all,
    history_rows,
    press_update,
    seed_chat,
    seed_media,
    seed_queue_item,
    seed_queued,
)

GRAPH = "https://graph.test/v21.0"
IG_USER = "1789"
IG_TOKEN = "EAAGsecret-token-value"


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
        # Every Auto Post reads the publishing quota first.
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


def _captions(app: TestApp) -> list[str]:
    return [edit.caption for edit in app.telegram.of(EditMessageCaption)]


HISTORY = "h.status, h.posting_method, h.instagram_media_id, h.acted_by_name"


async def _queue_status(app: TestApp) -> list[str]:
    return [r.status for r in await fetch_all(app.sessions, "SELECT status FROM posting_queue")]


async def test_button_is_offered(app: TestApp) -> None:
    labels = [
        b.text for row in queue_keyboard(uuid.uuid4(), instagram=True).inline_keyboard for b in row
    ]
    assert "🤖 Auto Post" in labels


async def test_publishes_and_records_once(app: TestApp, graph: respx.MockRouter) -> None:
    routes = happy(graph)
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))

    assert [tuple(r) for r in await history_rows(app.sessions, HISTORY)] == [
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
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))

    assert routes["create"].call_count == 1 and routes["publish"].call_count == 0
    assert await history_rows(app.sessions, HISTORY) == []
    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert "Dry run" in last.caption and last.reply_markup is not None


def _container_says(
    *, publish_error: dict[str, int] | None = None, **status: str
) -> Callable[[respx.MockRouter], object]:
    """Graph makes container-1, reports `status` for it, and refuses the publish with
    `publish_error` if given."""

    def setup(graph: respx.MockRouter) -> None:
        graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
        graph.get("/container-1").respond(json=status)
        if publish_error is not None:
            graph.post(f"/{IG_USER}/media_publish").respond(400, json={"error": publish_error})

    return setup


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        (
            lambda g: g.post(f"/{IG_USER}/media").respond(
                400, json={"error": {"code": 4, "message": "limit"}}
            ),
            "rate limit was reached; try again later (error 4)",
        ),
        (
            lambda g: g.post(f"/{IG_USER}/media").respond(
                400, json={"error": {"code": 190, "message": "expired"}}
            ),
            "access token is invalid, expired or revoked; an admin must put a new long-lived"
            " token in the configuration and restart the bot (error 190)",
        ),
        (
            lambda g: g.post(f"/{IG_USER}/media").mock(side_effect=httpx.ConnectError("down")),
            "could not be reached (ConnectError)",
        ),
        (
            lambda g: g.post(f"/{IG_USER}/media").respond(
                502, json={"error": {"code": 1, "message": "unknown"}}
            ),
            "had a server error (HTTP 502, error 1)",
        ),
        (
            # An orphan container at worst: it is never published.
            lambda g: g.post(f"/{IG_USER}/media").mock(side_effect=httpx.ReadTimeout("slow")),
            "did not answer (ReadTimeout)",
        ),
        (_container_says(status_code="ERROR"), "could not process the media"),
        (
            _container_says(status_code="ERROR", status="Error: 2207052"),
            "could not download the media from its URL (error 2207052)",
        ),
        (_container_says(status_code="EXPIRED"), "upload expired"),
        (
            _container_says(status_code="IN_PROGRESS"),
            "still processing the media (status IN_PROGRESS after 0.5 s)",
        ),
        (
            _container_says(status_code="FINISHED", publish_error={"code": 613}),
            "rate limit was reached; try again later (error 613)",
        ),
        (
            _container_says(
                status_code="FINISHED", publish_error={"code": 9007, "error_subcode": 2207027}
            ),
            "had not finished processing the media (error 9007/2207027)",
        ),
    ],
)
async def test_failure_names_the_cause_and_keeps_the_item(
    app: TestApp, graph: respx.MockRouter, setup: Any, cause: str
) -> None:
    setup(graph)
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))

    assert await history_rows(app.sessions, HISTORY) == []
    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert "Auto Post failed" in last.caption and cause in last.caption
    assert last.reply_markup == queue_keyboard(queue_id, instagram=True)
    assert IG_TOKEN not in last.caption
    # The item is still actionable: ✅ Posted now works.
    await app.feed(press_update(queue_id, QueueAction.POSTED))
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "telegram_manual"
    ]


def _container_status_held(graph: respx.MockRouter) -> tuple[asyncio.Event, asyncio.Event]:
    """Container status is asked (`polling` set), then answers FINISHED once `release` is set."""
    polling, release = asyncio.Event(), asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        polling.set()
        await release.wait()
        return httpx.Response(200, json={"status_code": "FINISHED"})

    graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
    graph.get("/container-1").mock(side_effect=held)
    return polling, release


async def test_posted_during_publishing_is_told_to_wait(
    app: TestApp, graph: respx.MockRouter
) -> None:
    polling, release = _container_status_held(graph)
    graph.post(f"/{IG_USER}/media_publish").respond(json={"id": "ig-media-9"})
    _, queue_id = await seed_queued(app.sessions)

    publishing = asyncio.create_task(app.feed(press_update(queue_id)))
    await polling.wait()
    await app.feed(press_update(queue_id, QueueAction.POSTED, BOB))
    await app.feed(press_update(queue_id, QueueAction.SKIP, BOB))
    release.set()
    await publishing

    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    toasts = [a.text for a in app.telegram.of(AnswerCallbackQuery)]
    assert toasts.count("🤖 An Auto Post of this item is in progress.") == 2


async def test_auto_post_after_posted_is_already(app: TestApp, graph: respx.MockRouter) -> None:
    routes = happy(graph)
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id, QueueAction.POSTED, BOB))
    await app.feed(press_update(queue_id))
    assert routes["create"].call_count == 0
    assert [a.text for a in app.telegram.of(AnswerCallbackQuery)][-1] == "✅ Already posted by Bob"
    assert len(await history_rows(app.sessions, HISTORY)) == 1


async def test_published_but_not_recorded_never_publishes_twice(
    app: TestApp, graph: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = happy(graph)
    _, queue_id = await seed_queued(app.sessions)

    async def lost(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError(PRESS_STATEMENT_NAME, {}, ConnectionResetError("reset"))

    monkeypatch.setattr(PressRepository, "record", lost)
    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)  # the follow-up resolve fails the same way
    assert await history_rows(app.sessions, HISTORY) == []
    [row] = await fetch_all(
        app.sessions, "SELECT status, instagram_media_id, claimed_at FROM posting_queue"
    )
    assert (row.status, row.instagram_media_id, row.claimed_at) == (
        "publishing",
        "ig-media-9",
        None,
    )
    assert _captions(app)[-1].endswith("✅ Published to Instagram; recording it…")

    monkeypatch.undo()
    await app.feed(press_update(queue_id))  # a re-press only resolves
    await app.services.tasks.drain(5)

    assert routes["publish"].call_count == 1 and routes["create"].call_count == 1
    assert [tuple(r) for r in await history_rows(app.sessions, HISTORY)] == [
        ("posted", "instagram_api", "ig-media-9", "Alice")
    ]
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")


@pytest.fixture
def ig(graph: respx.MockRouter) -> GraphState:
    state = GraphState(IG_USER)
    install_respx(graph, state)
    return state


async def _queue_row(app: TestApp) -> Any:
    [row] = await fetch_all(
        app.sessions,
        "SELECT status, instagram_creation_id, instagram_publish_requested_at, claimed_at,"
        " autopost_claim_token FROM posting_queue",
    )
    return row


def _toasts(app: TestApp) -> list[str]:
    return [a.text for a in app.telegram.of(AnswerCallbackQuery)]


async def _eventually(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _press_into_checking(app: TestApp, ig: GraphState, publish_fault: str) -> uuid.UUID:
    """Press Auto Post on a new item whose publish meets `publish_fault`: the caption says checking."""
    ig.publish_faults = [publish_fault]
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id))
    assert _captions(app)[-1].endswith("🔎 Checking with Instagram…")
    return queue_id


async def _assert_one_story_posted_by_alice(
    app: TestApp, ig: GraphState, publish_calls: list[str]
) -> None:
    """One Story after exactly these publish calls, recorded and shown as Alice's Auto Post."""
    assert ig.publish_calls == publish_calls
    assert len(ig.stories) == 1
    assert [tuple(r) for r in await history_rows(app.sessions, HISTORY)] == [
        ("posted", "instagram_api", "ig-media-1", "Alice")
    ]
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")


async def test_publish_times_out_after_publishing_one_story_however_often_pressed(
    app: TestApp, ig: GraphState
) -> None:
    """The answer of media_publish is lost after Instagram published: never a second Story."""
    queue_id = await _press_into_checking(app, ig, "timeout_after")
    assert "failed" not in _captions(app)[-1]
    # Pressed again, by the presser and by others, before and while it is resolved.
    for who in (ALICE, BOB, ALICE, BOB, ALICE):
        await app.feed(press_update(queue_id, who=who))
    await app.services.tasks.drain(5)

    assert ig.creates == 1
    await _assert_one_story_posted_by_alice(app, ig, ["container-1"])
    assert await _queue_status(app) == []
    assert _captions(app)[-1] == f"{CAPTION}\n\n✅ Posted to Instagram by Alice"
    assert app.telegram.of(EditMessageCaption)[-1].reply_markup is None
    toasts = _toasts(app)
    assert toasts[0] == "⏳ Publishing to Instagram…"
    assert all(
        t.startswith("🔎 Checking with Instagram") or t == "✅ Already posted by Alice"
        for t in toasts[1:]
    ), toasts
    # Once resolved, a press says what happened.
    await app.feed(press_update(queue_id, who=BOB))
    assert _toasts(app)[-1] == "✅ Already posted by Alice"
    assert ig.publish_calls == ["container-1"]


async def test_repress_while_unknown_creates_nothing(app: TestApp, ig: GraphState) -> None:
    ig.publish_faults = ["timeout_after"]
    ig.status_fails_after_publish = 1000  # once published, Instagram cannot tell
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))
    for _ in range(3):
        await app.feed(press_update(queue_id, who=BOB))
        assert _toasts(app)[-1].startswith("🔎 Checking with Instagram")
    await app.services.tasks.drain(5)
    # A manual press must wait too: the Story may be live.
    await app.feed(press_update(queue_id, QueueAction.POSTED, BOB))

    assert ig.creates == 1 and ig.publish_calls == ["container-1"]
    row = await _queue_row(app)
    assert row.status == "publishing" and row.instagram_publish_requested_at is not None
    assert await history_rows(app.sessions, HISTORY) == []
    assert _captions(app)[-1].endswith("🔎 Checking with Instagram…")

    ig.status_fails = 0
    assert await app.services.autopost.sweep() == 1
    assert ig.publish_calls == ["container-1"] and len(ig.stories) == 1
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]


async def test_5xx_before_publishing_publishes_that_same_container(
    app: TestApp, ig: GraphState
) -> None:
    await _press_into_checking(app, ig, "502_before")
    await app.services.tasks.drain(5)

    assert ig.creates == 1
    await _assert_one_story_posted_by_alice(app, ig, ["container-1", "container-1"])


async def test_container_error_after_unknown_gives_the_item_back(
    app: TestApp, ig: GraphState
) -> None:
    ig.publish_faults = ["502_before"]
    ig.status_after_publish["container-1"] = "ERROR"
    ig.statuses["container-1"] = "Error: 2207052"
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)

    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert "could not download the media from its URL (error 2207052)" in last.caption
    assert last.reply_markup == queue_keyboard(queue_id, instagram=True)
    # Only now may a new container be made.
    await app.feed(press_update(queue_id))
    assert ig.creates == 2 and ig.publish_calls == ["container-1", "container-2"]
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]


async def test_restart_sweep_resolves_what_a_dead_process_left(
    app: TestApp, ig: GraphState
) -> None:
    """Rows left `publishing` with expired leases: published, never published, unknown."""
    published, unpublished, interrupted = [
        await seed_queue_item(app.sessions, media_id, message_id=600 + n)
        for n, media_id in enumerate(await seed_media(app.sessions, count=3, prefix="dead"))
    ]
    ig.create()  # container-1: published by the dead process
    ig.publish("container-1")
    ig.create()  # container-2: FINISHED, publish request sent but never arrived
    async with app.sessions() as session, session.begin():
        await session.execute(
            text("INSERT INTO users (telegram_user_id, first_name) VALUES (7, 'Alice')")
        )
        for queue_id, container, marker in (
            (published, "container-1", True),
            (unpublished, "container-2", True),
            (interrupted, None, False),
        ):
            await session.execute(
                text(
                    "UPDATE posting_queue SET status = 'publishing',"
                    " claimed_at = now() - interval '1 hour', autopost_requested_by = 7,"
                    " autopost_claim_token = gen_random_uuid(),"
                    " instagram_creation_id = :container,"
                    " instagram_publish_requested_at = CASE WHEN :marker THEN now() END"
                    " WHERE id = :id"
                ),
                {"id": queue_id, "container": container, "marker": marker},
            )

    assert await app.services.autopost.sweep() == 3

    history = await fetch_all(
        app.sessions,
        "SELECT queue_item_id, posting_method, instagram_media_id, acted_by_name"
        " FROM posting_history ORDER BY instagram_media_id",
    )
    assert [tuple(r) for r in history] == [
        (published, "instagram_api", "ig-media-1", "Alice"),
        (unpublished, "instagram_api", "ig-media-2", "Alice"),
    ]
    assert ig.publish_calls == ["container-1", "container-2"]
    [row] = await fetch_all(app.sessions, "SELECT id, status FROM posting_queue")
    assert (row.id, row.status) == (interrupted, "sent")
    edits = {e.message_id: e for e in app.telegram.of(EditMessageCaption)}
    assert edits[600].caption.endswith("✅ Posted to Instagram by Alice")
    assert edits[601].caption.endswith("✅ Posted to Instagram by Alice")
    assert edits[602].caption.endswith("nothing was published.")
    assert edits[602].reply_markup == queue_keyboard(interrupted, instagram=True)
    assert await app.services.autopost.sweep() == 0


async def test_shutdown_mid_publish_hands_the_item_over(app: TestApp, ig: GraphState) -> None:
    ig.publish_faults = ["hang_after"]
    gate = asyncio.Event()
    _, queue_id = await seed_queued(app.sessions)
    original = ig.publish

    def slow_publish(container: str) -> Any:
        result = original(container)
        gate.set()
        return result

    ig.publish = slow_publish  # type: ignore[method-assign]
    # The respx fake raises at once; make the publish itself hang instead.
    hang = asyncio.Event()

    async def hanging_publish(container: str) -> str:
        slow_publish(container)
        await hang.wait()
        raise AssertionError("never answered")

    client = app.services.instagram_accounts.client_for(TEAM_CHAT)
    client.publish = hanging_publish  # type: ignore[method-assign]
    pressing = asyncio.create_task(app.feed(press_update(queue_id)))
    await asyncio.wait_for(gate.wait(), 5)
    await app.services.tasks.drain(0)  # shutdown: grace over, the Auto Post is cancelled
    with contextlib.suppress(asyncio.CancelledError):
        await pressing

    row = await _queue_row(app)
    assert (row.status, row.claimed_at) == ("publishing", None)
    assert _captions(app)[-1].endswith("🔎 Checking with Instagram…")
    assert await app.services.autopost.sweep() == 1  # the next process's first sweep
    assert len(ig.stories) == 1 and ig.publish_calls == ["container-1"]
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")


async def test_auto_post_on_a_row_still_sending(app: TestApp, ig: GraphState) -> None:
    _, queue_id = await seed_queued(app.sessions)
    async with app.sessions() as session, session.begin():
        await session.execute(text("UPDATE posting_queue SET status = 'sending'"))
    await app.feed(press_update(queue_id))
    assert _toasts(app) == [
        "⏳ This item is still being sent to the chat; press again in a moment."
    ]
    assert ig.creates == 0 and await _queue_status(app) == ["sending"]


async def test_toasts_are_plain_text_captions_escaped(app: TestApp, ig: GraphState) -> None:
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id, who=BOB_AND_CO))
    assert _toasts(app)[-1] == "⏳ Publishing to Instagram…"
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by &lt;Bob&gt; &amp; Co")
    await app.feed(press_update(queue_id, QueueAction.POSTED, ALICE))
    assert _toasts(app)[-1] == "✅ Already posted by <Bob> & Co"


async def test_claim_commit_reply_lost_is_recognised_as_ours(
    settings: Settings, database_url: str, proxy: PgProxy, ig: GraphState
) -> None:
    """The claim's COMMIT lands but its answer is cut: the re-read finds our token."""
    engine = create_engine(
        EngineOptions(url=proxy.url(make_url(database_url).database or ""), pool_size=2)
    )
    sessions = create_session_factory(engine)
    telegram = RecordingSession()
    bot = create_bot(settings, session=telegram)
    services = build_services(settings, Database(engine=engine, sessions=sessions), bot)
    try:
        await seed_chat(sessions)
        [media_id] = await seed_media(sessions)
        queue_id = await seed_queue_item(sessions, media_id)
        assert services.autopost is not None
        proxy.cut_after_reply_to(lambda data: b"COMMIT" in data)

        claim = await services.autopost.claim(queue_id, TEAM_CHAT, ALICE.identity)

        assert proxy.cuts == 1
        assert isinstance(claim, AutoPostClaim)
        row = (await fetch_all(sessions, "SELECT status, autopost_claim_token FROM posting_queue"))[
            0
        ]
        assert (row.status, row.autopost_claim_token) == ("publishing", claim.token)
        outcome = await services.autopost.publish(claim)
        assert outcome.result is AutoPostResult.RECORDED
        assert ig.publish_calls == ["container-1"]
    finally:
        await services.close()
        await engine.dispose()


async def test_not_configured_says_so(app: TestApp) -> None:
    app.dispatcher["autopost"] = None
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id))
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
    _, queue_id = await seed_queued(app.sessions)
    with caplog.at_level("DEBUG"):
        await app.feed(press_update(queue_id))
    output = capsys.readouterr()
    assert "Auto Post failed" in _captions(app)[-1]
    assert IG_TOKEN not in output.out + output.err + caplog.text
    assert all(IG_TOKEN not in caption for caption in _captions(app))


async def test_shutdown_before_the_publish_request_gives_the_item_back(
    app: TestApp, graph: respx.MockRouter
) -> None:
    polling = asyncio.Event()

    async def never_ready(request: httpx.Request) -> httpx.Response:
        polling.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    create = graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
    graph.get("/container-1").mock(side_effect=never_ready)
    publish = graph.post(f"/{IG_USER}/media_publish").respond(json={"id": "ig-media-9"})
    _, queue_id = await seed_queued(app.sessions)

    pressing = asyncio.create_task(app.feed(press_update(queue_id)))
    await asyncio.wait_for(polling.wait(), 5)
    await app.services.tasks.drain(0)
    with contextlib.suppress(asyncio.CancelledError):
        await pressing

    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert last.caption.endswith("interrupted before publishing; nothing was published.")
    assert last.reply_markup == queue_keyboard(queue_id, instagram=True)
    assert create.call_count == 1 and publish.call_count == 0


async def test_an_auto_post_whose_handler_shutdown_cancels_still_publishes(
    app: TestApp, graph: respx.MockRouter
) -> None:
    """The RUNS_TO_COMPLETION flag: cancelling the handler does not cancel its Auto Post."""
    polling, ready = _container_status_held(graph)
    publish = graph.post(f"/{IG_USER}/media_publish").respond(json={"id": "ig-media-9"})
    _, queue_id = await seed_queued(app.sessions)

    handling = asyncio.create_task(app.feed(press_update(queue_id)))
    await asyncio.wait_for(polling.wait(), 5)
    ready.set()  # no await before the cancel: the Auto Post is still mid-flight
    handling.cancel()  # as shutdown does to a handler still running
    with pytest.raises(asyncio.CancelledError):
        await handling
    await app.services.tasks.drain(5)

    assert publish.call_count == 1
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")


async def test_a_refused_republish_looks_again_before_saying_failed(
    app: TestApp, ig: GraphState
) -> None:
    """Status said FINISHED, yet the first publish landed meanwhile: the refusal is not a failure."""
    ig.publish_faults = ["timeout_after"]
    # Once the publish is in, one stale status answer.
    ig.on_publish.append(lambda: ig.status_sequence.update({"container-1": ["FINISHED"]}))
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)

    await _assert_one_story_posted_by_alice(app, ig, ["container-1", "container-1"])


async def test_checking_names_what_instagram_answered(app: TestApp, ig: GraphState) -> None:
    ig.publish_faults = ["timeout_after"]

    def token_expires() -> None:
        ig.status_error = (400, {"error": {"code": 190, "message": "Session has expired"}})

    ig.on_publish.append(token_expires)
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)

    assert await _queue_status(app) == ["publishing"]
    assert _captions(app)[-1].endswith(
        "🔎 Checking with Instagram… Instagram answered: the Instagram access token is"
        " invalid, expired or revoked; an admin must put a new long-lived token in the"
        " configuration and restart the bot (error 190)."
    )
    assert ig.publish_calls == ["container-1"]


async def test_an_unexpected_error_gives_the_item_back(
    app: TestApp, ig: GraphState, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    client = app.services.instagram_accounts.client_for(TEAM_CHAT)
    monkeypatch.setattr(client, "wait_until_ready", broken)
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(press_update(queue_id))

    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert last.caption.endswith("unexpected error (logged). Nothing was published.")
    assert last.reply_markup == queue_keyboard(queue_id, instagram=True)
    assert ig.publish_calls == []


async def test_a_publish_answer_without_a_media_id_is_checked(
    app: TestApp, graph: respx.MockRouter
) -> None:
    graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
    status = graph.get("/container-1").mock(
        side_effect=[
            httpx.Response(200, json={"status_code": "FINISHED"}),
            httpx.Response(200, json={"status_code": "PUBLISHED"}),
        ]
    )
    publish = graph.post(f"/{IG_USER}/media_publish").respond(json={"success": True})
    graph.get(f"/{IG_USER}/stories").respond(json={"data": []})
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)

    assert publish.call_count == 1 and status.call_count == 2
    assert [tuple(r) for r in await history_rows(app.sessions, HISTORY)] == [
        ("posted", "instagram_api", None, "Alice")
    ]


def _updates_queue_with(*columns: str, without: tuple[str, ...] = ()) -> Any:
    def matches(statement: str) -> bool:
        return (
            statement.startswith("UPDATE posting_queue SET")
            and all(f"{column}=" in statement for column in columns)
            and not any(f"{column}=" in statement for column in without)
        )

    return matches


# Each Auto Post unit of work, known by a statement of its transaction.
AUTOPOST_UNITS = {
    "autopost.claim": _updates_queue_with("autopost_requested_by"),
    "autopost.step (container)": _updates_queue_with(
        "instagram_creation_id", without=("autopost_requested_by", "status")
    ),
    "autopost.step (marker)": _updates_queue_with(
        "instagram_publish_requested_at", without=("status",)
    ),
    "autopost.hand_over": lambda statement: statement.startswith(
        "UPDATE posting_queue SET claimed_at=$1"
    ),
    "autopost.lease": _updates_queue_with(
        "autopost_claim_token", without=("autopost_requested_by", "status")
    ),
    "autopost.remember": _updates_queue_with("instagram_media_id"),
}
# The press runs in autocommit (no COMMIT): its statement's own reply is the one cut.
AUTOCOMMIT_UNITS = {"press.posted (instagram_api)": PRESS_STATEMENT_NAME.encode()}


@asynccontextmanager
async def _cutting_app(
    settings: Settings, database_url: str, proxy: PgProxy, target: Any
) -> AsyncIterator[tuple[Any, Any, RecordingSession, list[bool], uuid.UUID]]:
    """The app through the proxy, with one item queued; the COMMIT of the first transaction
    running a statement `target` matches reaches the server, its answer is cut."""
    engine = create_engine(
        EngineOptions(url=proxy.url(make_url(database_url).database or ""), pool_size=3)
    )
    sessions = create_session_factory(engine)
    telegram = RecordingSession()
    built = build_app(settings, Database(engine=engine, sessions=sessions), session=telegram)
    armed: list[bool] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not armed and target(statement):
            conn.info["cut_this_commit"] = True

    @event.listens_for(engine.sync_engine, "commit")
    def cut(conn: Any) -> None:
        if conn.info.pop("cut_this_commit", False) and not armed:
            armed.append(True)
            proxy.cut_after_reply_to(lambda data: b"COMMIT" in data)

    try:
        await seed_chat(sessions)
        [media_id] = await seed_media(sessions)
        queue_id = await seed_queue_item(sessions, media_id)
        yield built, sessions, telegram, armed, queue_id
    finally:
        await built.services.tasks.drain(5)
        await built.services.close()
        await engine.dispose()


@pytest.mark.parametrize("unit", [*AUTOPOST_UNITS, *AUTOCOMMIT_UNITS])
async def test_every_auto_post_commit_reply_lost_still_one_story(
    settings: Settings, database_url: str, proxy: PgProxy, ig: GraphState, unit: str
) -> None:
    """Table-driven: the last reply of one unit is cut (its COMMIT's, or the autocommit
    statement's: the server acted), the publish times out after publishing, the item is
    pressed again: one Story, one history row, the item done, the caption final."""
    target = AUTOPOST_UNITS.get(unit, lambda statement: False)
    async with _cutting_app(settings, database_url, proxy, target) as (
        built,
        sessions,
        telegram,
        armed,
        queue_id,
    ):
        ig.publish_faults = ["timeout_after"]
        if unit in AUTOCOMMIT_UNITS:
            marker = AUTOCOMMIT_UNITS[unit]
            armed.append(True)
            proxy.cut_after_reply_to(lambda data: marker in data)

        await built.dispatcher.feed_update(built.bot, press_update(queue_id))
        await built.dispatcher.feed_update(built.bot, press_update(queue_id, who=BOB))
        await built.services.tasks.drain(10)
        await built.services.autopost.sweep()  # whatever a cut left for the sweep

        assert armed == [True] and proxy.cuts == 1
        assert ig.creates == 1 and len(ig.stories) == 1
        history = await fetch_all(
            sessions, "SELECT status, posting_method, instagram_media_id FROM posting_history"
        )
        assert [tuple(r) for r in history] == [("posted", "instagram_api", "ig-media-1")]
        assert await fetch_all(sessions, "SELECT 1 FROM posting_queue") == []
        last = telegram.of(EditMessageCaption)[-1]
        assert last.caption.endswith("✅ Posted to Instagram by Alice")


async def test_release_commit_reply_lost_gives_the_item_back_once(
    settings: Settings, database_url: str, proxy: PgProxy, ig: GraphState
) -> None:
    """The give-back after a refusal loses its COMMIT reply: buttons back, then one Story."""
    released = _updates_queue_with("status", "instagram_publish_requested_at")
    async with _cutting_app(settings, database_url, proxy, released) as (
        built,
        sessions,
        telegram,
        armed,
        queue_id,
    ):
        ig.status_sequence["container-1"] = ["ERROR"]

        await built.dispatcher.feed_update(built.bot, press_update(queue_id))
        assert armed == [True] and proxy.cuts == 1
        [row] = await fetch_all(sessions, "SELECT status, autopost_claim_token FROM posting_queue")
        assert (row.status, row.autopost_claim_token) == ("sent", None)
        last = telegram.of(EditMessageCaption)[-1]
        assert "Auto Post failed" in last.caption and last.reply_markup is not None

        await built.dispatcher.feed_update(built.bot, press_update(queue_id))
        assert ig.creates == 2 and ig.publish_calls == ["container-2"]
        history = await fetch_all(sessions, "SELECT posting_method FROM posting_history")
        assert [r.posting_method for r in history] == ["instagram_api"]


async def test_a_refused_first_publish_that_went_live_is_recorded_not_retried(
    app: TestApp, graph: respx.MockRouter
) -> None:
    """media_publish answers an error, yet the Story went live: never "failed", never a second.

    Graph answers transient errors (code 2, "retry later") with a 4xx too, and
    Instagram has published media whose publish call answered an error.
    """
    create = graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
    published = False

    def status(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status_code": "PUBLISHED" if published else "FINISHED"})

    def refuse_after_publishing(request: httpx.Request) -> httpx.Response:
        nonlocal published
        published = True
        return httpx.Response(
            400,
            json={
                "error": {
                    "code": 2,
                    "is_transient": True,
                    "message": "An unexpected error has occurred. Please retry later.",
                }
            },
        )

    graph.get("/container-1").mock(side_effect=status)
    publish = graph.post(f"/{IG_USER}/media_publish").mock(side_effect=refuse_after_publishing)
    graph.get(f"/{IG_USER}/stories").respond(json={"data": []})
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)
    await app.feed(press_update(queue_id, who=BOB))
    await app.services.tasks.drain(5)

    assert create.call_count == 1 and publish.call_count == 1
    assert [tuple(r) for r in await history_rows(app.sessions, HISTORY)] == [
        ("posted", "instagram_api", None, "Alice")
    ]
    assert await _queue_status(app) == []
    assert not any("Auto Post failed" in caption for caption in _captions(app))
    assert _toasts(app)[-1] == "✅ Already posted by Alice"


async def _left_publishing(app: TestApp, ig: GraphState, count: int) -> list[uuid.UUID]:
    """`count` rows a dead process left after requesting the publish of a FINISHED container."""
    media_ids = await seed_media(app.sessions, count=count, prefix="left")
    queue_ids = []
    async with app.sessions() as session, session.begin():
        await session.execute(
            text("INSERT INTO users (telegram_user_id, first_name) VALUES (7, 'Alice')")
        )
    for n, media_id in enumerate(media_ids):
        queue_id = await seed_queue_item(app.sessions, media_id, message_id=700 + n)
        _, body = ig.create()
        async with app.sessions() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE posting_queue SET status = 'publishing', claimed_at = NULL,"
                    " autopost_requested_by = 7, autopost_claim_token = gen_random_uuid(),"
                    " instagram_creation_id = :container, instagram_publish_requested_at = now()"
                    " WHERE id = :id"
                ),
                {"id": queue_id, "container": body["id"]},
            )
        queue_ids.append(queue_id)
    return queue_ids


async def test_one_row_failing_never_starves_the_other_rows_of_the_sweep(
    app: TestApp, ig: GraphState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _left_publishing(app, ig, 2)
    service = app.services.autopost
    settle = service.resolver.settle_container
    poisoned: list[uuid.UUID] = []

    async def first_one_breaks(hold: Any) -> Any:
        if not poisoned:
            poisoned.append(hold.queue_id)
            raise RuntimeError("a bug on one row")
        return await settle(hold)

    monkeypatch.setattr(service.resolver, "settle_container", first_one_breaks)

    assert await service.sweep() == 2

    assert len(ig.stories) == 1
    [row] = await fetch_all(app.sessions, "SELECT id, status, claimed_at FROM posting_queue")
    # The broken row is handed over, for the next sweep; the other one was recorded.
    assert (row.id, row.status, row.claimed_at) == (poisoned[0], "publishing", None)
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    monkeypatch.setattr(service.resolver, "settle_container", settle)
    assert await service.sweep() == 1
    assert len(ig.stories) == 2 and await _queue_status(app) == []


async def test_a_graph_answer_that_is_not_an_object_leaves_the_outcome_unknown(
    app: TestApp, graph: respx.MockRouter
) -> None:
    """A proxy answering `[]` for the container's status: checked again later, nothing raised."""
    state = GraphState(IG_USER)
    [queue_id] = await _left_publishing(app, state, 1)
    graph.get("/container-1").respond(200, json=[])

    outcome = await app.services.autopost.resolve(queue_id)

    assert outcome is not None and outcome.result is AutoPostResult.CHECKING
    row = await _queue_row(app)
    assert (row.status, row.claimed_at) == ("publishing", None)
    assert await history_rows(app.sessions, HISTORY) == []


async def test_a_background_resolve_that_fails_is_logged(
    app: TestApp, ig: GraphState, monkeypatch: pytest.MonkeyPatch
) -> None:
    [queue_id] = await _left_publishing(app, ig, 1)
    service = app.services.autopost

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service.resolver, "settle_container", broken)
    with structlog.testing.capture_logs() as logs:
        await service.resolve_soon(queue_id, immediately=True)

    assert [e["queue_id"] for e in logs if e["event"] == "autopost.resolve_failed"] == [
        str(queue_id)
    ]
    row = await _queue_row(app)
    assert (row.status, row.claimed_at) == ("publishing", None)


async def test_auto_post_from_the_unconfirmed_notice_shows_its_progress_and_result(
    app: TestApp, ig: GraphState
) -> None:
    """A send Telegram never confirmed: the row has no message id, the notice is a text."""
    _, queue_id = await seed_queued(app.sessions)
    async with app.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE posting_queue SET telegram_message_id = NULL WHERE id = :id"),
            {"id": queue_id},
        )
    for _ in range(4):  # Telegram refuses a caption edit on a text message
        app.telegram.fail_next(
            EditMessageCaption,
            TelegramBadRequest(
                method=EditMessageCaption(caption=""),
                message="Bad Request: there is no caption in the message to edit",
            ),
        )
    notice = text_message(TEAM_CHAT, 900, "⚠️ Telegram didn't confirm that this item arrived.")
    notice = notice.model_copy(update={"reply_markup": queue_keyboard(queue_id, instagram=True)})
    data = QueueCallback(action=QueueAction.AUTOPOST, queue_id=queue_id).pack()

    await app.feed(callback_update(data, notice, ALICE.user))
    await app.services.tasks.drain(5)

    assert len(ig.stories) == 1
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    edits = app.telegram.of(EditMessageText)
    assert edits and {e.message_id for e in edits} == {900}
    assert edits[-1].text.endswith("✅ Posted to Instagram by Alice")
    assert edits[-1].reply_markup is None


async def test_a_publish_refused_for_the_token_gives_the_item_back_though_status_is_unread(
    app: TestApp, graph: respx.MockRouter
) -> None:
    """Error 190 on media_publish: nothing was published; the team can post by hand."""
    expired = {"error": {"code": 190, "message": "Session has expired"}}
    graph.post(f"/{IG_USER}/media").respond(json={"id": "container-1"})
    graph.get("/container-1").mock(
        side_effect=[
            httpx.Response(200, json={"status_code": "FINISHED"}),
            httpx.Response(400, json=expired),
        ]
    )
    graph.post(f"/{IG_USER}/media_publish").respond(400, json=expired)
    _, queue_id = await seed_queued(app.sessions)

    await app.feed(press_update(queue_id))

    assert await _queue_status(app) == ["sent"]
    last = app.telegram.of(EditMessageCaption)[-1]
    assert "Auto Post failed" in last.caption and "(error 190)" in last.caption
    assert last.reply_markup == queue_keyboard(queue_id, instagram=True)


# -- leases on the database's clock, captions that always settle, unresolvable rows ---------


async def test_a_fresh_hold_is_not_stale_to_a_host_whose_clock_runs_ahead(
    app: TestApp, ig: GraphState
) -> None:
    """Staleness is judged against the database's now(), never this host's clock."""
    _, queue_id = await seed_queued(app.sessions)
    claim = await app.services.autopost.claim(queue_id, TEAM_CHAT, ALICE.identity)
    assert isinstance(claim, AutoPostClaim)

    ahead = build_app(
        app.settings,
        Database(engine=app.sessions.kw["bind"], sessions=app.sessions),
        session=RecordingSession(),
        clock=lambda: datetime.now(UTC) + timedelta(hours=1),
    )
    try:
        await ahead.services.autopost.sweep()
        assert await ahead.services.autopost.resolve(queue_id) is None
        taken = await ahead.services.autopost.claim(queue_id, TEAM_CHAT, BOB.identity)
    finally:
        await ahead.services.close()

    assert not isinstance(taken, AutoPostClaim)
    [row] = await fetch_all(
        app.sessions,
        "SELECT status, autopost_claim_token, lease_expires_at > now() AS held FROM posting_queue",
    )
    assert (row.status, row.autopost_claim_token, row.held) == ("publishing", claim.token, True)


async def _pending_captions(app: TestApp) -> list[Any]:
    return [
        row.caption_pending_message_id
        for row in await fetch_all(
            app.sessions, "SELECT caption_pending_message_id FROM posting_history"
        )
    ]


async def test_a_final_edit_cut_short_by_shutdown_is_finished_by_the_sweep(
    app: TestApp, ig: GraphState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The press statement landed, then shutdown cancelled the caption edit: the caption
    must not fall back to "checking", and the sweep shows the recorded outcome."""
    _, queue_id = await seed_queued(app.sessions)
    claim = await app.services.autopost.claim(queue_id, TEAM_CHAT, ALICE.identity, message_id=500)
    assert isinstance(claim, AutoPostClaim)
    make_request = app.telegram.make_request
    editing_final = asyncio.Event()

    async def final_edit_hangs(bot: Any, method: Any, timeout: int | None = None) -> Any:
        if isinstance(method, EditMessageCaption) and "Posted to Instagram" in method.caption:
            editing_final.set()
            await asyncio.Event().wait()
        return await make_request(bot, method, timeout)

    monkeypatch.setattr(app.telegram, "make_request", final_edit_hangs)
    publishing = asyncio.create_task(app.services.autopost.publish(claim))
    await asyncio.wait_for(editing_final.wait(), 10)
    publishing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await publishing

    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    assert not any(caption.endswith("🔎 Checking with Instagram…") for caption in _captions(app))
    assert await _pending_captions(app) == [500]

    monkeypatch.setattr(app.telegram, "make_request", make_request)
    await app.services.autopost.sweep()
    assert _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")
    assert await _pending_captions(app) == [None]
    assert len(ig.stories) == 1


async def test_a_failed_final_edit_is_repaired_by_the_next_sweep(
    app: TestApp, ig: GraphState, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, queue_id = await seed_queued(app.sessions)
    make_request = app.telegram.make_request
    refused: list[str] = []

    async def first_final_edit_refused(bot: Any, method: Any, timeout: int | None = None) -> Any:
        if (
            isinstance(method, EditMessageCaption)
            and "Posted to Instagram" in method.caption
            and not refused
        ):
            refused.append(method.caption)
            raise TelegramBadRequest(method=method, message="Bad Request: try again")
        return await make_request(bot, method, timeout)

    monkeypatch.setattr(app.telegram, "make_request", first_final_edit_refused)
    await app.feed(press_update(queue_id))
    await app.services.tasks.drain(5)
    assert [r.posting_method for r in await history_rows(app.sessions, HISTORY)] == [
        "instagram_api"
    ]
    assert await _pending_captions(app) == [500]  # the edit failed: the mark stays

    await app.services.autopost.sweep()
    assert refused and _captions(app)[-1].endswith("✅ Posted to Instagram by Alice")
    assert await _pending_captions(app) == [None]
    await app.services.autopost.sweep()  # settled: nothing more to edit
    assert not _captions(app)[-1].endswith("…")


async def test_a_lost_press_answer_is_reread_before_saying_recording(
    settings: Settings, database_url: str, proxy: PgProxy, ig: GraphState
) -> None:
    """The press statement landed but its answer, and every re-read for the retry deadline,
    was lost: the caption is read back from the database, not left at "recording it…"."""
    async with _cutting_app(settings, database_url, proxy, lambda statement: False) as (
        built,
        sessions,
        telegram,
        _,
        queue_id,
    ):
        prepared: list[bool] = []
        executed: list[bool] = []
        rereading: list[bool] = []
        recorded_meanwhile = built.services.autopost.recorder.recorded_meanwhile

        async def reread_after_the_press_gave_up(press: Any) -> Any:
            rereading.append(True)
            return await recorded_meanwhile(press)

        built.services.autopost.recorder.recorded_meanwhile = reread_after_the_press_gave_up  # type: ignore[method-assign]

        def press_replies_until_the_press_gives_up(data: bytes) -> bool:
            """The press statement runs (its execution's reply is cut), then every press
            message's reply is cut until the press's retries are spent; the re-read after
            that gets its answer (judged by the re-read starting, not by a clock)."""
            if not executed:
                if b"storyqueue:press\n" in data:
                    prepared.append(True)  # the prepare; the execution follows
                    return False
                if prepared:
                    executed.append(True)
                    return True
                return False
            return b"storyqueue:press" in data and not rereading

        proxy.cut_at_random(1.0, press_replies_until_the_press_gives_up)
        await built.dispatcher.feed_update(built.bot, press_update(queue_id))
        await built.services.tasks.drain(15)
        proxy.cut_at_random(0.0)

        assert proxy.cuts >= 2 and len(ig.stories) == 1
        history = await fetch_all(sessions, "SELECT posting_method FROM posting_history")
        assert [r.posting_method for r in history] == ["instagram_api"]
        captions = [edit.caption for edit in telegram.of(EditMessageCaption)]
        assert not any(caption.endswith("recording it…") for caption in captions)
        assert captions[-1].endswith("✅ Posted to Instagram by Alice")


async def test_a_publishing_row_whose_chat_lost_its_account_gets_its_buttons_back(
    app: TestApp, ig: GraphState, tmp_path: Path
) -> None:
    """Nobody can ask Instagram any more: the buttons come back with a warning to look
    first, and ✅ works on it again."""
    [queue_id] = await _left_publishing(app, ig, 1)
    await seed_chat(app.sessions, OTHER_CHAT)
    token_file = tmp_path / "other.token"
    token_file.write_text("other-token\n")
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f'[[account]]\nchat_id = {OTHER_CHAT}\ninstagram_user_id = "222"\n'
        f'token_file = "{token_file}"\n'
    )
    telegram = RecordingSession()
    restarted = build_app(
        Settings.model_validate(
            {
                **app.settings.model_dump(),
                "telegram_chat_id": (TEAM_CHAT, OTHER_CHAT),
                "instagram_user_id": None,
                "instagram_access_token": None,
                "instagram_accounts_file": accounts,
            }
        ),
        Database(engine=app.sessions.kw["bind"], sessions=app.sessions),
        session=telegram,
    )
    try:
        assert restarted.services.autopost is not None
        for _ in range(2):  # a second sweep finds nothing left to do
            await restarted.services.autopost.sweep()
        [row] = await fetch_all(app.sessions, "SELECT status, lease_expires_at FROM posting_queue")
        assert (row.status, row.lease_expires_at) == ("sent", None)
        [edit] = telegram.of(EditMessageCaption)
        assert edit.message_id == 700
        assert "not configured for this chat" in edit.caption
        assert "check Instagram before posting by hand" in edit.caption
        assert [b.text for line in edit.reply_markup.inline_keyboard for b in line] == [
            "✅ Posted",
            "⏭️ Skip",
            "🚫 Reject",
        ]
        press = press_update(queue_id, QueueAction.POSTED, BOB)
        await restarted.dispatcher.feed_update(restarted.bot, press)
        assert [
            (r.posting_method, r.acted_by_name) for r in await history_rows(app.sessions, HISTORY)
        ] == [("telegram_manual", "Bob")]
    finally:
        await restarted.services.tasks.drain(5)
        await restarted.services.close()
