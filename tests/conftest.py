"""One PostgreSQL per test session; one database per test, cloned from a migrated template."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import build_app
from bot.config import Settings
from bot.database import Database
from db import migrate
from db.embedded import EmbeddedPostgres
from db.engine import EngineOptions, create_engine, create_session_factory
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_telegram_session import RecordingSession
from tests.helpers.pgproxy import PgProxy, ProxiedEngines
from tests.helpers.support import (
    ADA,
    TEAM_CHAT,
    TEST_TOKEN,
    PostgresHandle,
    TestApp,
    seed_chat,
)

TEMPLATE_DB = "storyqueue_template"


def _dsn(sqlalchemy_url: str) -> str:
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresHandle]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield PostgresHandle(
            admin_url=external.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete_on_stop=True)
    admin_url = embedded.start()
    try:
        yield PostgresHandle(admin_url=admin_url, embedded=embedded)
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
async def template_url(postgres: PostgresHandle) -> str:
    await _admin_execute(postgres, f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    await _admin_execute(postgres, f'CREATE DATABASE "{TEMPLATE_DB}"')
    url = postgres.url_for(TEMPLATE_DB)
    engine = create_engine(EngineOptions(url=url, pool_size=1, max_overflow=0))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def _admin_execute(postgres: PostgresHandle, sql: str) -> None:
    admin = await asyncpg.connect(_dsn(postgres.admin_url))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@asynccontextmanager
async def _scratch_database(
    postgres: PostgresHandle, prefix: str, template: str | None
) -> AsyncIterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    await _admin_execute(postgres, f'CREATE DATABASE "{name}"{clone}')
    try:
        yield postgres.url_for(name)
    finally:
        await _admin_execute(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(postgres: PostgresHandle, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone (a clone of the template)."""
    async with _scratch_database(postgres, "sq_test", TEMPLATE_DB) as url:
        yield url


@pytest.fixture
async def empty_database_url(postgres: PostgresHandle) -> AsyncIterator[str]:
    """An empty database, for migration tests."""
    async with _scratch_database(postgres, "sq_empty", None) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        EngineOptions(url=database_url, pool_size=5, max_overflow=5, command_timeout_seconds=5.0)
    )
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def proxy(postgres: PostgresHandle) -> AsyncIterator[PgProxy]:
    """A byte proxy in front of the embedded server: counts round trips, cuts or silences replies."""
    if postgres.embedded is None:
        pytest.skip("the proxy fronts the embedded server's unix socket")
    # Under /tmp with a short name: a unix socket's path is limited to about 100 bytes.
    proxy = PgProxy(postgres.embedded.socket_dir, Path(tempfile.mkdtemp(prefix="sqp")))
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
def project_root() -> Path:
    return migrate.PROJECT_ROOT


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=TEST_TOKEN,
        telegram_chat_id=TEAM_CHAT,
        admin_user_ids=frozenset({ADA.id}),
        data_dir=tmp_path / "data",
        media_dir=tmp_path / "media",
        # The suite's media are a few bytes behind a JPEG header: handed on as they are.
        media_preparation=False,
    )


@pytest.fixture
def telegram() -> RecordingSession:
    return RecordingSession()


@pytest.fixture
async def app(
    settings: Settings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    telegram: RecordingSession,
) -> AsyncIterator[TestApp]:
    """The real dispatcher, services and database; Telegram is the recording session."""
    database = Database(engine=engine, sessions=session_factory)
    built = build_app(settings, database, session=telegram)
    await seed_chat(session_factory)
    yield TestApp(
        settings=settings,
        bot=built.bot,
        dispatcher=built.dispatcher,
        services=built.services,
        sessions=session_factory,
        telegram=telegram,
    )
    await built.services.tasks.drain(5)
    await built.services.close()


# --- Engines through the byte proxy, for the tests that cut or silence the database's replies.


@pytest.fixture
async def proxied_engines(database_url: str, proxy: PgProxy) -> AsyncIterator[ProxiedEngines]:
    """Engines through `proxy`, disposed after the test (before the proxy closes)."""
    engines = ProxiedEngines(proxy.url(make_url(database_url).database or ""))
    yield engines
    for engine in engines.opened:
        await engine.dispose()


@pytest.fixture
def proxied(proxied_engines: ProxiedEngines) -> async_sessionmaker[AsyncSession]:
    """Sessions to this test's database through `proxy`."""
    return create_session_factory(proxied_engines.open(pool_size=3))


# The fake Bot API server, shared by the process tests (test_e2e*) and the doctor's tests.


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """A fake Telegram Bot API on 127.0.0.1 that answers for TEST_TOKEN."""
    server = FakeBotApi(token=TEST_TOKEN)
    await server.start()
    yield server
    await server.stop()
