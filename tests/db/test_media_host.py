# ruff: noqa: F401, F811  (fixtures imported from tests.helpers.fake_s3 and tests.test_doctor)
"""Hosting Auto Post media where Instagram fetches it: a real S3 (moto's server), the fake Graph
downloading each container's URL as Meta does, and the documented refresh call."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from aiogram.methods import EditMessageCaption
from aiogram.types import Update

from bot.config import Settings, parse_store_url
from bot.doctor import timeouts
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from bot.services.autopost import holds
from bot.services.instagram import InstagramClient, InstagramError
from bot.services.media_host import (
    HostedMedia,
    MediaHost,
    MediaHostError,
    MediaToHost,
    PreparedFolder,
    S3Store,
    create_s3_client,
    original_unchanged,
)
from bot.services.media_prep import prepare, prepared_dir
from db.vocabulary import Framing, MediaKind
from tests.db.test_doctor import (  # the check tests' fixtures and helpers
    CDN,
    changed,
    indexed,
    with_instagram,
)
from tests.db.test_doctor import graph as doctor_graph
from tests.helpers.check import line_of, run_check
from tests.helpers.fake_graph import FakeGraphServer, GraphState, install_respx
from tests.helpers.fake_s3 import (
    BUCKET,
    PREFIX,
    STORE_URL,
    AnswerCuttingProxy,
    S3Endpoint,
    cutting_proxy,
    moto_server,
    s3,
)
from tests.helpers.fake_telegram_session import callback_update, queue_message
from tests.helpers.media_files import photo_bytes, write_photo, write_video
from tests.helpers.support import (
    ALICE,
    CAPTION,
    TEAM_CHAT,
    TEST_TOKEN,
    TestApp,
    execute,
    fetch_all,
    seed_media,
    seed_queue_item,
    trickling_server,
)

GRAPH = "https://graph.test/v21.0"
IG_USER = "1789"
IG_TOKEN = "EAAGsecret-token-value"


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


def _store(s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch, endpoint: str | None = None) -> S3Store:
    """The store as the bot builds it: boto3 reads the standard AWS environment variables."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return S3Store(create_s3_client(), parse_store_url(STORE_URL))


# --- the store on its own --------------------------------------------------------------------


async def test_s3_round_trip_by_content_key(
    s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    photo = write_photo(tmp_path / "media" / "cat" / "a.jpg")
    host = MediaHost(_store(s3, monkeypatch), tmp_path / "media", original_unchanged)
    item = MediaToHost("cat/a.jpg", MediaKind.PHOTO, TEAM_CHAT)

    hosted = await host.url_for(item)
    again = await host.url_for(item)  # a second press: the same object, not a second one

    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert hosted.key == again.key == f"{PREFIX}{sha}.jpg"
    assert s3.stored_keys() == [hosted.key]
    assert _fetch(hosted.url) == photo.read_bytes()  # presigned: fetched with no credentials
    assert "X-Amz-Expires=3600" in hosted.url
    await host.release(hosted)
    assert s3.stored_keys() == []
    with pytest.raises(urllib.error.HTTPError):
        _fetch(hosted.url)


async def test_a_lost_upload_answer_is_repeated_onto_the_same_object(
    s3: S3Endpoint,
    cutting_proxy: AnswerCuttingProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    photo = write_photo(tmp_path / "media" / "a.jpg")
    store = _store(s3, monkeypatch, endpoint=cutting_proxy.url)
    host = MediaHost(store, tmp_path / "media", original_unchanged)
    cutting_proxy.cut_next_put()

    hosted = await host.url_for(MediaToHost("a.jpg", MediaKind.PHOTO, TEAM_CHAT))

    assert cutting_proxy.cuts == 1  # the store stored it; its answer was lost
    assert cutting_proxy.puts == 2  # so it was sent again, under the same key
    assert s3.stored_keys() == [hosted.key]
    assert s3.read(hosted.key) == photo.read_bytes()


async def test_a_store_that_refuses_is_a_clear_error(
    s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_photo(tmp_path / "a.jpg")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    store = S3Store(create_s3_client(), parse_store_url("s3://no-such-bucket/x"))
    with pytest.raises(MediaHostError, match="no-such-bucket"):
        await MediaHost(store, tmp_path, original_unchanged).url_for(
            MediaToHost("a.jpg", MediaKind.PHOTO, TEAM_CHAT)
        )


async def test_a_failed_remove_is_logged_and_left_to_the_lifecycle_rule(
    s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_photo(tmp_path / "a.jpg")
    host = MediaHost(_store(s3, monkeypatch), tmp_path, original_unchanged)
    hosted = await host.url_for(MediaToHost("a.jpg", MediaKind.PHOTO, TEAM_CHAT))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    broken = MediaHost(
        S3Store(create_s3_client(), parse_store_url(STORE_URL)), tmp_path, original_unchanged
    )
    await broken.release(hosted)  # no exception: the outcome is settled whatever the store says
    assert s3.stored_keys() == [hosted.key]


async def test_an_object_two_items_share_stays_until_the_last_one_is_settled(
    s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same content in two items (two chats, or a duplicate file) is one object."""
    photo = write_photo(tmp_path / "cat" / "a.jpg")
    (tmp_path / "dup").mkdir()
    (tmp_path / "dup" / "b.jpg").write_bytes(photo.read_bytes())
    host = MediaHost(_store(s3, monkeypatch), tmp_path, original_unchanged)
    first = MediaToHost("cat/a.jpg", MediaKind.PHOTO, TEAM_CHAT)
    second = MediaToHost("dup/b.jpg", MediaKind.PHOTO, TEAM_CHAT + 1)
    third = MediaToHost("cat/a.jpg", MediaKind.PHOTO, TEAM_CHAT + 2)

    hosted = await host.url_for(first)
    other = await host.url_for(second)
    assert other.key == hosted.key

    await host.release(hosted, first)  # settled; the second's container may be downloading
    assert s3.stored_keys() == [hosted.key]
    assert _fetch(other.url) == photo.read_bytes()
    await host.url_for(third)
    await host.release_item(second)  # the resolver settles the second; the third still needs it
    assert s3.stored_keys() == [hosted.key]
    await host.release_item(third)
    assert s3.stored_keys() == []


async def test_the_prepared_folder_is_served_under_the_base_url(tmp_path: Path) -> None:
    prepared = write_photo(tmp_path / "media" / ".storyqueue" / "prepared" / "ab c.jpg")
    folder = PreparedFolder(tmp_path / "media", "https://cdn.test/media/")

    class Prepared:
        path = prepared
        content_type = "image/jpeg"
        sha256 = "ab"
        size = 1

    hosted = await folder.put(Prepared())
    assert hosted == HostedMedia("https://cdn.test/media/.storyqueue/prepared/ab%20c.jpg")
    outside = write_photo(tmp_path / "elsewhere.jpg")
    with pytest.raises(MediaHostError, match="not under MEDIA_DIR"):
        folder.url_of(outside)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://bucket/x", "must be s3://bucket/prefix"),
        ("s3://", "is not a bucket name"),
        ("s3://Upper/x", "is not a bucket name"),
    ],
)
def test_a_bad_store_url_is_named(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_store_url(value)


# --- the fake Graph does what Meta does ------------------------------------------------------


async def test_the_fake_graph_downloads_and_refuses_what_meta_refuses(tmp_path: Path) -> None:
    state = GraphState(IG_USER, fetch_media=True)
    server = FakeGraphServer(state)
    await server.start()
    files = {
        "ok.jpg": photo_bytes(),
        "photo.png": photo_bytes("PNG"),
        "ok.mp4": write_video(tmp_path / "ok.mp4", 4).read_bytes(),
        "mpeg4.mp4": write_video(tmp_path / "m.mp4", 4, codec="mpeg4").read_bytes(),
        "moov-last.mp4": write_video(tmp_path / "l.mp4", 4, faststart=False).read_bytes(),
        "long.mp4": write_video(tmp_path / "long.mp4", 61).read_bytes(),
    }
    try:
        async with httpx.AsyncClient() as http:
            client = InstagramClient(http, graph_url=server.url, user_id=IG_USER, access_token="T")
            outcomes: dict[str, object] = {}
            for name, data in files.items():
                path = tmp_path / "served" / name
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(data)
                try:
                    await client.create_story_container(path.as_uri(), video=name.endswith(".mp4"))
                    outcomes[name] = "ok"
                except InstagramError as error:
                    outcomes[name] = error.codes
        assert outcomes == {
            "ok.jpg": "ok",
            "photo.png": (36001, 2207005),
            "ok.mp4": "ok",
            "mpeg4.mp4": (352, 2207026),
            "moov-last.mp4": (352, 2207026),
            "long.mp4": (352, 2207026),
        }
        assert [f.data for f in state.fetched] == list(files.values())
        with pytest.raises(InstagramError) as unreachable:
            await InstagramClient(
                httpx.AsyncClient(), graph_url=server.url, user_id=IG_USER, access_token="T"
            ).create_story_container("http://127.0.0.1:9/gone.jpg", video=False)
        assert unreachable.value.codes == (9004, 2207052)
    finally:
        await server.stop()


async def test_the_refresh_goes_in_its_documented_shape_and_only_that_answers() -> None:
    state = GraphState(IG_USER)
    server = FakeGraphServer(state)
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            client = InstagramClient(
                http, graph_url=server.url, user_id=IG_USER, access_token="OLD"
            )
            token, lifetime = await client.refresh_access_token()
            assert state.refreshes == [("OLD", token)]
            assert lifetime == 5184000
            # The shape the bot used to send: a header to the versioned path. It does not exist.
            old = await http.get(
                f"{server.url}/refresh_access_token",
                params={"grant_type": "ig_refresh_token"},
                headers={"Authorization": "Bearer OLD"},
            )
            assert old.status_code == 404
            header = await http.get(
                f"{server.root}/refresh_access_token",
                params={"grant_type": "ig_refresh_token"},
                headers={"Authorization": "Bearer OLD"},
            )
            assert header.status_code == 400
            assert len(state.refreshes) == 1
    finally:
        await server.stop()


# --- Auto Post through the store (the real dispatcher and database; Graph by respx) ----------


@pytest.fixture
def store_endpoint(request: pytest.FixtureRequest, s3: S3Endpoint) -> str:
    """moto itself, or the answer-cutting proxy in front of it when the test asks for one."""
    if "cutting_proxy" in request.fixturenames:
        return str(request.getfixturevalue("cutting_proxy").url)
    return s3.url


@pytest.fixture
def settings(
    settings: Settings,
    s3: S3Endpoint,
    store_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", store_endpoint)
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "bot_token": TEST_TOKEN,
            "instagram_user_id": IG_USER,
            "instagram_access_token": IG_TOKEN,
            "media_public_store": STORE_URL,
            "instagram_graph_url": GRAPH,
            "instagram_publish_timeout_seconds": 0.5,
            "instagram_poll_interval_seconds": 0.01,
        }
    )


@pytest.fixture
def ig() -> Iterator[GraphState]:
    state = GraphState(IG_USER, fetch_media=True)
    with respx.mock(base_url=GRAPH, assert_all_called=False) as router:
        router.get(f"/{IG_USER}/content_publishing_limit").respond(
            json={"data": [{"quota_usage": 3, "config": {"quota_total": 50}}]}
        )
        install_respx(router, state)
        yield state


async def _queued_file(app: TestApp, name: str, data: bytes, kind: str = "photo") -> uuid.UUID:
    path = app.settings.media_dir / "cat" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    [media_id] = await seed_media(
        app.sessions, file_path=f"cat/{name}", file_name=name, media_kind=kind
    )
    return await seed_queue_item(app.sessions, media_id)


def _press(queue_id: uuid.UUID) -> Update:
    data = QueueCallback(action=QueueAction.AUTOPOST, queue_id=queue_id).pack()
    message = queue_message(TEAM_CHAT, 500, CAPTION, queue_keyboard(queue_id, instagram=True))
    return callback_update(data, message, ALICE.user)


def _last_caption(app: TestApp) -> str:
    return str(app.telegram.of(EditMessageCaption)[-1].caption)


async def _history(app: TestApp) -> list[tuple[object, ...]]:
    rows = await fetch_all(
        app.sessions, "SELECT status, posting_method, instagram_media_id FROM posting_history"
    )
    return [tuple(row) for row in rows]


async def test_auto_post_hands_instagram_a_presigned_url_and_removes_the_object(
    app: TestApp,
    ig: GraphState,
    s3: S3Endpoint,
) -> None:
    photo = photo_bytes()
    queue_id = await _queued_file(app, "a.jpg", photo)

    await app.feed(_press(queue_id))

    assert [f.data for f in ig.fetched] == [photo]  # Instagram downloaded it from the store
    assert "X-Amz-Signature=" in ig.fetched[0].url
    assert len(ig.stories) == 1
    assert await _history(app) == [("posted", "instagram_api", "ig-media-1")]
    assert s3.stored_keys() == []  # settled: the copy is gone


async def test_a_lost_upload_answer_still_gives_one_story(
    app: TestApp,
    ig: GraphState,
    s3: S3Endpoint,
    cutting_proxy: AnswerCuttingProxy,
) -> None:
    queue_id = await _queued_file(app, "a.jpg", photo_bytes())
    cutting_proxy.cut_next_put()

    await app.feed(_press(queue_id))

    assert cutting_proxy.cuts == 1
    assert ig.creates == 1
    assert len(ig.stories) == 1
    assert await _history(app) == [("posted", "instagram_api", "ig-media-1")]
    assert s3.stored_keys() == []


async def test_a_lost_publish_answer_through_the_store_still_gives_one_story(
    app: TestApp,
    ig: GraphState,
    s3: S3Endpoint,
) -> None:
    ig.publish_faults = ["timeout_after"]
    queue_id = await _queued_file(app, "a.jpg", photo_bytes())

    await app.feed(_press(queue_id))
    assert _last_caption(app).endswith("🔎 Checking with Instagram…")
    await app.feed(_press(queue_id))  # pressed again while it is resolved
    await app.services.tasks.drain(5)
    if not await _history(app):
        await app.services.autopost.sweep()  # type: ignore[union-attr]

    assert ig.creates == 1
    assert ig.publish_calls == ["container-1"]
    assert len(ig.stories) == 1
    assert await _history(app) == [("posted", "instagram_api", "ig-media-1")]
    # Settled by the resolver, which finds the copy again by its content.
    assert s3.stored_keys() == []


async def test_a_photo_instagram_refuses_gets_its_buttons_back_and_the_copy_goes(
    app: TestApp,
    ig: GraphState,
    s3: S3Endpoint,
) -> None:
    """Without preparation a PNG goes as it is, and Instagram refuses it, as Meta does."""
    queue_id = await _queued_file(app, "a.png", photo_bytes("PNG"))

    await app.feed(_press(queue_id))

    assert ig.refused and ig.refused[0][1] == 2207005
    assert ig.stories == []
    assert "Auto Post failed" in _last_caption(app) and "2207005" in _last_caption(app)
    assert app.telegram.of(EditMessageCaption)[-1].reply_markup is not None
    assert await _history(app) == []
    rows = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert [r.status for r in rows] == ["sent"]
    assert s3.stored_keys() == []


async def test_an_unreachable_store_fails_before_anything_is_created(
    app: TestApp, ig: GraphState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    queue_id = await _queued_file(app, "a.jpg", photo_bytes())
    (app.settings.media_dir / "cat" / "a.jpg").unlink()  # gone from the library meanwhile

    await app.feed(_press(queue_id))

    assert ig.creates == 0 and ig.fetched == []
    caption = _last_caption(app)
    assert "could not be put where Instagram fetches it" in caption
    assert "Nothing was published" in caption
    rows = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert [r.status for r in rows] == ["sent"]


# --- `check` -------------------------------------------------------------------------------


async def test_check_round_trips_a_tiny_object_through_the_store(
    healthy: Settings, indexed: list[object], s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    configured = changed(
        with_instagram(healthy), media_public_base_url=None, media_public_store=STORE_URL
    )
    with doctor_graph() as router:
        router.route(host="127.0.0.1").pass_through()  # the presigned URL, fetched for real
        code, lines = await run_check(configured)
    line = line_of(lines, "media store")
    assert code == 0, lines
    assert line.startswith("PASS ") and "fetched back and deleted" in line
    assert s3.stored_keys() == []

    broken = changed(configured, media_public_store="s3://no-such-bucket/x")
    with doctor_graph() as router:
        router.route(host="127.0.0.1").pass_through()
        code, lines = await run_check(broken)
    line = line_of(lines, "media store")
    assert code == 1 and line.startswith("FAIL ") and "s3://no-such-bucket/x/" in line
    assert "AWS_ENDPOINT_URL" in line


async def test_check_fetches_one_prepared_file_under_the_base_url(
    healthy: Settings, indexed: list[object]
) -> None:
    prepared = write_photo(healthy.media_dir / ".storyqueue" / "prepared" / "ab.jpg")
    url = f"{CDN}/.storyqueue/prepared/ab.jpg"
    with doctor_graph() as router:
        router.get(url).respond(content=prepared.read_bytes(), content_type="image/jpeg")
        code, lines = await run_check(with_instagram(healthy))
    assert code == 0, lines
    assert line_of(lines, "media url").split() == [
        "PASS",
        "media",
        "url:",
        "GET",
        f"{url}:",
        "200",
        "image/jpeg",
    ]

    with doctor_graph() as router:
        router.get(url).respond(404)
        code, lines = await run_check(with_instagram(healthy))
    line = line_of(lines, "media url")
    assert code == 1 and line.startswith("FAIL ") and ".storyqueue/prepared folder" in line


async def test_check_fetches_a_file_the_bot_prepared_not_its_lock(
    healthy: Settings, indexed: list[object], tmp_path: Path
) -> None:
    """The cache holds dot-named lock and partial files beside each prepared file."""
    source = write_photo(tmp_path / "wide.png", "PNG", size=(400, 300))
    prepared = prepare(source, MediaKind.PHOTO, Framing.BLUR, prepared_dir(healthy.media_dir))
    # A large prepared video sorts first: check fetches the smallest file, within seconds.
    video = prepared_dir(healthy.media_dir) / "00" / "big.mp4"
    video.parent.mkdir()
    video.write_bytes(b"\0" * 2_000_000)
    url = f"{CDN}/{prepared.path.relative_to(healthy.media_dir).as_posix()}"
    with doctor_graph() as router:
        router.get(url).respond(content=prepared.path.read_bytes(), content_type="image/jpeg")
        code, lines = await run_check(with_instagram(healthy))
    assert code == 0, lines
    assert f"GET {url}: 200 image/jpeg" in line_of(lines, "media url")


async def test_without_preparation_check_fetches_an_original_not_an_old_prepared_file(
    healthy: Settings, indexed: list[object]
) -> None:
    """MEDIA_PREPARATION off: Instagram is handed the originals, so check tries one of them."""
    write_photo(healthy.media_dir / ".storyqueue" / "prepared" / "ab.jpg")
    configured = changed(with_instagram(healthy), media_preparation=False)
    with doctor_graph() as router:
        router.get(f"{CDN}/.storyqueue/prepared/ab.jpg").respond(404)
        code, lines = await run_check(configured)
    line = line_of(lines, "media url")
    assert code == 0, lines
    assert line.startswith("PASS ") and f"HEAD {CDN}/cat/item0.jpg" in line


async def test_a_trickling_base_url_does_not_hang_the_prepared_folder_check(
    healthy: Settings, indexed: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server sending one byte at a time never trips a per-read timeout: the check is bounded."""
    monkeypatch.setattr(timeouts, "NETWORK_TIMEOUT_SECONDS", 1.0)
    write_photo(healthy.media_dir / ".storyqueue" / "prepared" / "ab.jpg")
    async with trickling_server() as base:
        started = asyncio.get_running_loop().time()
        with doctor_graph() as router:
            router.route(host="127.0.0.1").pass_through()
            code, lines = await run_check(
                changed(with_instagram(healthy), media_public_base_url=base)
            )
    elapsed = asyncio.get_running_loop().time() - started
    line = line_of(lines, "media url")
    assert code == 1 and line.startswith("FAIL ") and "did not answer" in line, lines
    assert elapsed < timeouts.whole_check() + 5, elapsed


async def test_a_silent_store_does_not_hang_the_check(
    healthy: Settings, indexed: list[object], s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that takes the connection and never answers costs the check seconds."""
    monkeypatch.setattr(timeouts, "NETWORK_TIMEOUT_SECONDS", 1.0)

    async def accept_and_say_nothing(reader: object, writer: object) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    configured = changed(
        with_instagram(healthy), media_public_base_url=None, media_public_store=STORE_URL
    )
    started = asyncio.get_running_loop().time()
    try:
        with doctor_graph():
            code, lines = await run_check(configured)
    finally:
        server.close()
    elapsed = asyncio.get_running_loop().time() - started
    line = line_of(lines, "media store")
    assert code == 1 and line.startswith("FAIL ") and "upload to" in line, lines
    assert elapsed < 4 * timeouts.network() + 5, elapsed


# --- the container's status at the documented pace -------------------------------------------


def test_the_default_pace_is_the_content_publishing_guides() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.instagram_poll_interval_seconds == 60  # "once per minute"
    assert defaults.instagram_publish_timeout_seconds == 300  # "for no more than 5 minutes"


async def test_status_is_polled_at_the_set_pace_and_no_longer_than_the_timeout() -> None:
    with respx.mock(base_url=GRAPH) as router:
        status = router.get("/container-1").respond(json={"status_code": "IN_PROGRESS"})
        async with httpx.AsyncClient() as http:
            client = InstagramClient(
                http,
                graph_url=GRAPH,
                user_id=IG_USER,
                access_token="T",
                poll_interval_seconds=0.2,
                publish_timeout_seconds=1.0,
            )
            started = asyncio.get_running_loop().time()
            with pytest.raises(InstagramError, match="still_processing"):
                await client.wait_until_ready("container-1")
            elapsed = asyncio.get_running_loop().time() - started
    # One read at once, then one per interval while the next still fits the timeout.
    assert status.call_count == 5
    assert 0.8 <= elapsed < 1.2


@pytest.fixture
def short_autopost_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """Holds last the publish timeout (0.5 s) plus 0.5 s, so a slow upload outlasts one."""
    monkeypatch.setattr(holds, "LEASE_BEYOND_PUBLISH_TIMEOUT_SECONDS", 0.5)


def _slow_hosting(
    monkeypatch: pytest.MonkeyPatch,
    seconds: float,
    *,
    first: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Preparing and uploading take `seconds` (after `first`, if given)."""
    real_url_for = MediaHost.url_for

    async def slow_url_for(host: MediaHost, media: Any) -> Any:
        if first is not None:
            await first()
        await asyncio.sleep(seconds)
        return await real_url_for(host, media)

    monkeypatch.setattr(MediaHost, "url_for", slow_url_for)


async def test_a_hold_is_renewed_while_its_media_is_prepared_and_uploaded(
    short_autopost_lease: None,
    app: TestApp,
    ig: GraphState,
    s3: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Preparing and uploading take three leases: the hold never lapses meanwhile (no sweep
    could take it for abandoned), and one Story is posted."""
    queue_id = await _queued_file(app, "a.jpg", photo_bytes())
    _slow_hosting(monkeypatch, 3.0)
    pressing = asyncio.create_task(app.feed(_press(queue_id)))
    lapsed: list[bool] = []
    for _ in range(5):
        await asyncio.sleep(0.5)
        [row] = await fetch_all(
            app.sessions,
            "SELECT lease_expires_at < now() AS lapsed FROM posting_queue WHERE id = :id",
            id=queue_id,
        )
        lapsed.append(row.lapsed)
    await pressing
    assert lapsed == [False] * 5
    assert len(ig.stories) == 1
    assert await _history(app) == [("posted", "instagram_api", "ig-media-1")]


async def test_a_hold_lost_while_its_media_is_prepared_creates_nothing_on_instagram(
    short_autopost_lease: None,
    app: TestApp,
    ig: GraphState,
    s3: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another holder took the item meanwhile: no container is made for the old hold."""
    queue_id = await _queued_file(app, "a.jpg", photo_bytes())

    async def another_holder_takes_it() -> None:
        await execute(
            app.sessions,
            "UPDATE posting_queue SET autopost_claim_token = gen_random_uuid() WHERE id = :id",
            id=queue_id,
        )

    _slow_hosting(monkeypatch, 1.0, first=another_holder_takes_it)  # past a renewal
    await app.feed(_press(queue_id))
    assert ig.creates == 0
    assert ig.stories == []
