"""Every text within Telegram's limits (bot.limits): the builders fed worst-case inputs.

Toasts 200, captions 1,024, messages 4,096, counted as Telegram does: UTF-16
code units of the text after its HTML is parsed (the fake Bot API's own count).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from bot.app import create_bot, telegram_session
from bot.config import Settings
from bot.domain import NothingToSend, SendResult
from bot.limits import CAPTION_LIMIT, MESSAGE_LIMIT, TOAST_LIMIT, fit_html
from bot.presentation import captions, texts
from bot.services.accounts.care import ExpiryNotice
from bot.services.accounts.live import LiveEntry, LiveView
from bot.services.accounts.status import InstagramStatus
from bot.services.accounts.tokens import AccountHealth
from bot.services.instagram import InstagramError, InstagramFailure, LiveStory
from bot.services.press import OutcomeKind, PressOutcome
from bot.services.runway import CategoryRunway, Runway
from bot.services.team import (
    ChatView,
    DecisionView,
    FileView,
    PersonStats,
    QueuedView,
    SettingRejectedError,
    StatsView,
    StatusView,
)
from db.repositories.activity import PublishedStory
from db.repositories.instagram_accounts import ExpiryWarning
from db.repositories.stats import CategoryRow, HourCell, NamedItems
from db.vocabulary import (
    ExpirySource,
    HistoryStatus,
    InstagramFlavour,
    PostingMethod,
    QueueStatus,
)
from tests.helpers.fake_bot_api import FakeBotApi, parsed_length
from tests.helpers.support import TEAM_CHAT, TEST_TOKEN

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
# Telegram allows 64 characters for each of first and last name; these are surrogate pairs.
LONG_NAME = "𝓐" * 64 + " " + "&<b>" * 16
LONG_FILE = "🌸" * 120 + "<&>" * 20 + ".jpg"  # long, HTML-hostile, two UTF-16 units a flower
LONG_CAPTION = "Caption & <tags> 😀 " * 300
LONG_ERROR = "Telegram server says - Bad Request: " + "x" * 5000
MANY = 500


def _media(index: int = 0) -> FileView:
    return FileView(
        uuid.uuid4(),
        file_name=f"{index}{LONG_FILE}",
        file_path=f"a/{index}.jpg",
        autopost_refusal=LONG_ERROR,
    )


def _chat(**values: object) -> ChatView:
    fields: dict[str, object] = {
        "telegram_chat_id": TEAM_CHAT,
        "is_paused": True,
        "paused_at": NOW,
        "dry_run": True,
        "posts_per_day": 50,
        "posting_hours_start": 9,
        "posting_hours_end": 21,
        "timezone": "America/Argentina/ComodRivadavia",
        "message_thread_id": 2**31,
        "sent_ttl_days": 10**6,
        "runway_warning_days": 10**6,
        "photo_framing": "solid",
        **values,
    }
    return ChatView(**fields)


def _history() -> list[tuple[DecisionView, FileView]]:
    return [
        (
            DecisionView(
                status=HistoryStatus.POSTED,
                acted_by_name=LONG_NAME,
                acted_at=NOW - timedelta(days=index),
                posting_method=PostingMethod.INSTAGRAM_API,
            ),
            _media(index),
        )
        for index in range(MANY)
    ]


def _queue() -> list[tuple[QueuedView, FileView]]:
    return [
        (
            QueuedView(uuid.uuid4(), QueueStatus.PUBLISHING, created_at=NOW - timedelta(hours=1)),
            _media(index),
        )
        for index in range(MANY)
    ]


def _status() -> str:
    view = StatusView(
        chat=_chat(),
        paused_by=LONG_NAME,
        in_flight=10**6,
        next_slot=NOW,
        last_post=DecisionView(HistoryStatus.POSTED, acted_by_name=LONG_NAME, acted_at=NOW),
        last_post_file=LONG_FILE,
        library=10**6,
        eligible=10**6,
    )
    instagram = ["📸 Instagram: token expires in about 59 days, 25/25 posts in 24 h"] * 3
    return texts.status_text(view, NOW, instagram)


def _live() -> str:
    entries = [
        LiveEntry(
            LiveStory(f"m{index}", NOW, "IMAGE"),
            PublishedStory(f"m{index}", f"{index}{LONG_FILE}", LONG_NAME, NOW),
        )
        for index in range(100)
    ]
    return texts.live_text(LiveView("Europe/Berlin", entries), NOW)


def _outcome(status: HistoryStatus) -> PressOutcome:
    return PressOutcome(
        OutcomeKind.RECORDED,
        status=status,
        acted_by_name=LONG_NAME,
        posting_method=PostingMethod.INSTAGRAM_API,
    )


def _final_caption() -> str:
    body = captions.notification_caption(LONG_FILE, "a category " * 20, LONG_CAPTION)
    return captions.with_status(body, captions.final_line(_outcome(HistoryStatus.POSTED)))


def _status_line_caption(line: str) -> str:
    body = captions.notification_caption(
        LONG_FILE, "a category " * 20, LONG_CAPTION, manual_only=LONG_ERROR
    )
    return captions.with_status(body, line)


# builder -> (its worst case, Telegram's limit for where it is shown)
def _long_error() -> InstagramError:
    return InstagramError(InstagramFailure.API, "refused " * 40, codes=(2207052, 9007))


def _runway() -> Runway:
    return Runway(10**6, 10.0**9, CategoryRunway("a category " * 200, 10.0**8))


def _stats() -> str:
    people = [
        PersonStats(f"{index}{LONG_NAME}", (10**6,) * 3, (10**6,) * 3, (10**6,) * 3, 10**6, 10.0**8)
        for index in range(100)
    ]
    categories = [
        CategoryRow(f"{index}{LONG_FILE}", 10**6, 1, 2, 3, 10.0**9, 10**6) for index in range(100)
    ]
    hours = [HourCell(day, hour, 10.0**9, 1) for day in range(1, 8) for hour in range(24)]
    items = NamedItems(10**6, [f"{index}{LONG_FILE}" for index in range(100)], [10**6] * 100)
    view = StatsView(
        10**4, "America/Argentina/ComodRivadavia", people, categories, hours, hours, items, items
    )
    return texts.stats_text(view)


def _graph_refusal() -> InstagramError:
    """The longest cause the Graph client words: its detail is cut at 200 characters."""
    return InstagramError(InstagramFailure.SERVER_ERROR, "x" * 200, codes=(10**9, 10**9))


def _instagram_status() -> str:
    health = AccountHealth(InstagramFlavour.INSTAGRAM, NOW, ExpirySource.ASSUMED, LONG_ERROR)
    status = InstagramStatus(NOW, None, _graph_refusal(), health)
    return "\n".join(texts.instagram_status_lines(status))


def _expiry_warning() -> str:
    cause = _graph_refusal().cause
    notice = ExpiryNotice(ExpiryWarning.SEVEN_DAYS, NOW, timedelta(days=7), True, cause)
    return texts.expiry_warning(notice)


BUILDERS: dict[str, list[tuple[Callable[[], str], int]]] = {
    "texts.setting_rejected": [
        (
            lambda: texts.setting_rejected(SettingRejectedError("timezone", "🌸" * 2000)),
            TOAST_LIMIT,
        ),
        (
            lambda: texts.setting_rejected(
                SettingRejectedError("runway_warning_days", -1, 0, 10**6)
            ),
            TOAST_LIMIT,
        ),
    ],
    "texts.render_settings": [(lambda: texts.render_settings(_chat()), MESSAGE_LIMIT)],
    "texts.timezone_set": [(lambda: texts.timezone_set("A" * 4000), MESSAGE_LIMIT)],
    "texts.history_usage": [(lambda: texts.history_usage(10**9), MESSAGE_LIMIT)],
    "texts.status_text": [(_status, MESSAGE_LIMIT)],
    "texts.queue_text": [(lambda: texts.queue_text(_queue(), NOW), MESSAGE_LIMIT)],
    "texts.history_text": [(lambda: texts.history_text(_history(), NOW), MESSAGE_LIMIT)],
    "texts.nothing_sent_text": [
        (lambda: texts.nothing_sent_text(SendResult(False, error=LONG_ERROR)), MESSAGE_LIMIT),
        (
            lambda: texts.nothing_sent_text(
                SendResult(False, NothingToSend.ALL_LOCKED, 10**9, 10**9, 10**9)
            ),
            MESSAGE_LIMIT,
        ),
    ],
    "texts.live_text": [(_live, MESSAGE_LIMIT)],
    "texts.live_failed": [(lambda: texts.live_failed(LONG_ERROR), MESSAGE_LIMIT)],
    "texts.set_aside_notice": [
        (lambda: texts.set_aside_notice(LONG_FILE * 10, LONG_ERROR), MESSAGE_LIMIT)
    ],
    "texts.set_aside_text": [
        (
            lambda: texts.set_aside_text(
                [
                    FileView(
                        uuid.uuid4(),
                        file_name=f"{index}{LONG_FILE}",
                        file_path=f"{index}{LONG_FILE}",
                        set_aside_reason=LONG_ERROR,
                    )
                    for index in range(100)
                ]
            ),
            MESSAGE_LIMIT,
        )
    ],
    "texts.topic_set": [(lambda: texts.topic_set(2**31), TOAST_LIMIT)],
    "texts.lifetime_set": [(lambda: texts.lifetime_set(10**6), TOAST_LIMIT)],
    "texts.sent_to_topic": [(lambda: texts.sent_to_topic(2**31), TOAST_LIMIT)],
    "texts.chat_migrated_notice": [
        (lambda: texts.chat_migrated_notice(-(10**13), -(10**13)), MESSAGE_LIMIT)
    ],
    "texts.returned_to_library": [
        (
            lambda: texts.returned_to_library([f"{i}{LONG_FILE}" for i in range(1000)], 10**6),
            MESSAGE_LIMIT,
        )
    ],
    "texts.stats_text": [(_stats, MESSAGE_LIMIT)],
    "texts.stats_usage": [(lambda: texts.stats_usage(10**9), TOAST_LIMIT)],
    "texts.runway_line": [(lambda: texts.runway_line(_runway()), MESSAGE_LIMIT)],
    "texts.runway_warning": [(lambda: texts.runway_warning(_runway(), 10**6), MESSAGE_LIMIT)],
    "texts.runway_threshold_set": [(lambda: texts.runway_threshold_set(10**6), TOAST_LIMIT)],
    "texts.framing_set": [(lambda: texts.framing_set("crop"), TOAST_LIMIT)],
    "texts.autopost_manual_only": [(lambda: texts.autopost_manual_only(LONG_ERROR), TOAST_LIMIT)],
    "texts.manual_only_mark": [(lambda: texts.manual_only_mark(LONG_ERROR), MESSAGE_LIMIT)],
    "texts.budget_wait_line": [(lambda: texts.budget_wait_line(10**9, 10.0**9), MESSAGE_LIMIT)],
    "texts.file_label": [(lambda: texts.file_label(LONG_FILE * 10), MESSAGE_LIMIT)],
    "texts.instagram_status_lines": [(_instagram_status, MESSAGE_LIMIT)],
    "texts.expiry_warning": [(_expiry_warning, MESSAGE_LIMIT)],
    "texts.fit_message": [(lambda: texts.fit_message("header", [LONG_FILE] * 1000), MESSAGE_LIMIT)],
    "captions.notification_caption": [
        (
            lambda: captions.notification_caption(LONG_FILE, "c " * 600, LONG_CAPTION),
            CAPTION_LIMIT,
        ),
        (
            lambda: captions.notification_caption(
                LONG_FILE, "c " * 600, LONG_CAPTION, manual_only=LONG_ERROR
            ),
            CAPTION_LIMIT,
        ),
    ],
    "captions.with_status": [
        (_final_caption, CAPTION_LIMIT),
        (lambda: _status_line_caption("Instagram answered: " + LONG_ERROR), CAPTION_LIMIT),
    ],
    # Lines shown as a toast as well as in a caption: a toast's limit.
    "captions.done_line": [
        (lambda: captions.done_line(HistoryStatus.SKIPPED, LONG_NAME, instagram=True), TOAST_LIMIT)
    ],
    "captions.final_line": [
        (lambda: captions.final_line(_outcome(HistoryStatus.REJECTED)), TOAST_LIMIT)
    ],
    "captions.autopost_failed_line": [
        (lambda: _status_line_caption(captions.autopost_failed_line(_long_error())), CAPTION_LIMIT)
    ],
    "captions.autopost_checking_line": [
        (
            lambda: _status_line_caption(captions.autopost_checking_line(_long_error())),
            CAPTION_LIMIT,
        )
    ],
    "captions.already_line": [
        (lambda: captions.already_line(HistoryStatus.POSTED, LONG_NAME), TOAST_LIMIT)
    ],
}
# Not texts of their own: parts of the ones above (tested through them) or readers.
NOT_BUILDERS = {
    "captions.says_manual_only",  # reads a caption, builds none
    "texts.ago",
    "texts.local",
    "texts.escape",
    "texts.topic_name",
    "texts.category_label",
    "texts.days_text",
    "texts.duration_text",
    "texts.runway_threshold",
    "texts.token_line",
    "captions.shortened",
    "captions.body_of",
    "captions.escape",
}
# Constants shown as a whole message; every other one may be a toast (200).
MESSAGES = {"texts.HELP", "texts.INTRO", "texts.PRIVATE_CHAT_REFUSED", "texts.LIVE_NOT_CONFIGURED"}


def _public(module: ModuleType, kind: Callable[[object], bool]) -> set[str]:
    name = module.__name__.rsplit(".", 1)[1]
    return {
        f"{name}.{attribute}"
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and kind(value)
        and getattr(value, "__module__", module.__name__) == module.__name__
    }


def test_the_table_covers_every_builder() -> None:
    functions = _public(texts, inspect.isfunction) | _public(captions, inspect.isfunction)
    assert functions - NOT_BUILDERS == set(BUILDERS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_builder_fits_its_limit(name: str) -> None:
    for build, limit in BUILDERS[name]:
        text = build()
        assert parsed_length(text, "HTML") <= limit, (name, parsed_length(text, "HTML"))


CONSTANTS = sorted(
    _public(texts, lambda value: isinstance(value, str))
    | _public(captions, lambda value: isinstance(value, str))
)


@pytest.mark.parametrize("name", CONSTANTS)
def test_each_constant_fits_where_it_is_shown(name: str) -> None:
    module, attribute = name.split(".")
    text = getattr({"texts": texts, "captions": captions}[module], attribute)
    limit = MESSAGE_LIMIT if name in MESSAGES else TOAST_LIMIT
    assert parsed_length(text, "HTML" if name in MESSAGES else None) <= limit


def test_the_expired_token_alert_fits_a_toast() -> None:
    assert parsed_length(texts.AUTOPOST_TOKEN_EXPIRED, None) <= TOAST_LIMIT


def test_shortened_html_stays_well_formed_and_counts_utf16() -> None:
    html = "<b>" + "𝓐" * 300 + "</b> &amp; <code>" + "x" * 300 + "</code>"
    fitted = fit_html(html, 200)
    assert parsed_length(fitted, "HTML") <= 200
    assert fitted.startswith("<b>𝓐") and fitted.endswith("…</b>")
    assert fit_html("<i>short &amp; fine</i>", 200) == "<i>short &amp; fine</i>"


# -- the fake refuses what Telegram refuses; the bot's session never sends it --------------


@pytest.fixture
async def real_bot(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[Bot]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=TEST_TOKEN,
        telegram_chat_id=TEAM_CHAT,
        telegram_api_url=api.url,
        data_dir=tmp_path,
    )
    bot = create_bot(settings, telegram_session(settings), ride_out_errors=False)
    yield bot
    await bot.session.close()


async def test_the_fake_bot_api_refuses_over_long_texts_like_telegram(api: FakeBotApi) -> None:
    bare = Bot(TEST_TOKEN, session=telegram_session_for(api))
    try:
        with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
            await bare.answer_callback_query("cb1", text="x" * 201)
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bare.send_message(TEAM_CHAT, "😀" * 2049)
        with pytest.raises(TelegramBadRequest, match="caption is too long"):
            await bare.send_photo(TEAM_CHAT, "file-id", caption="x" * 1025)
        # Counted after parsing: tags and entities are not characters.
        await bare.send_message(TEAM_CHAT, "<b>" + "&amp;" * 4096 + "</b>", parse_mode="HTML")
    finally:
        await bare.session.close()


async def test_the_bot_shortens_what_would_be_refused(api: FakeBotApi, real_bot: Bot) -> None:
    assert await real_bot.answer_callback_query("cb1", text="🔑 " + "x" * 300, show_alert=True)
    await real_bot.send_message(TEAM_CHAT, "<b>" + "&lt;x&gt; " * 2000 + "</b>")
    await real_bot.send_photo(TEAM_CHAT, "file-id", caption="<i>" + "😀" * 600 + "</i>")
    [toast] = api.of("answerCallbackQuery")
    assert parsed_length(toast.params["text"], None) == TOAST_LIMIT
    assert toast.params["text"].endswith("…")
    [message] = api.of("sendMessage")
    assert parsed_length(message.params["text"], "HTML") <= MESSAGE_LIMIT
    assert message.params["text"].endswith("…</b>")
    [photo] = api.of("sendPhoto")
    assert parsed_length(photo.params["caption"], "HTML") <= CAPTION_LIMIT


def telegram_session_for(api: FakeBotApi):  # type: ignore[no-untyped-def]
    """A session to the fake Bot API without the bot's request middlewares."""
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    session = AiohttpSession()
    session.api = TelegramAPIServer.from_base(api.url, is_local=True)
    return session
