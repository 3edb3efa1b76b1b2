"""The request middleware: what it repeats, what it never repeats, and a loud 409."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from aiogram.exceptions import (
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    GetUpdates,
    SendMessage,
    SendPhoto,
)
from aiohttp import ClientConnectorError
from aiohttp.client_reqrep import ConnectionKey

from bot.telegram_retry import TelegramRetryMiddleware, at_most_once

FAST = TelegramRetryMiddleware(backoff_seconds=(0.0, 0.0, 0.0), max_retry_after_seconds=0.1)


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, bot: Any, method: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


EDIT = EditMessageCaption(chat_id=1, message_id=2, caption="x")


async def test_server_errors_and_network_errors_are_retried() -> None:
    flaky = Flaky(
        TelegramServerError(method=EDIT, message="Bad Gateway"),
        TelegramNetworkError(method=EDIT, message="reset"),
    )
    assert await FAST(flaky, None, EDIT) == "ok"  # type: ignore[arg-type]
    assert flaky.calls == 3


async def test_retry_after_is_honoured_within_a_bound() -> None:
    answer = AnswerCallbackQuery(callback_query_id="1")
    flaky = Flaky(TelegramRetryAfter(method=answer, message="Too Many Requests", retry_after=0))
    assert await FAST(flaky, None, answer) == "ok"  # type: ignore[arg-type]
    assert flaky.calls == 2
    too_long = Flaky(TelegramRetryAfter(method=answer, message="Too Many Requests", retry_after=60))
    with pytest.raises(TelegramRetryAfter):
        await FAST(too_long, None, answer)  # type: ignore[arg-type]
    assert too_long.calls == 1


async def test_gives_up_after_the_backoff() -> None:
    flaky = Flaky(*[TelegramServerError(method=EDIT, message="down") for _ in range(10)])
    with pytest.raises(TelegramServerError):
        await FAST(flaky, None, EDIT)  # type: ignore[arg-type]
    assert flaky.calls == 4


async def test_a_queue_item_send_is_never_repeated_here() -> None:
    send = SendPhoto(chat_id=1, photo="file-id")
    flaky = Flaky(TelegramNetworkError(method=send, message="timeout"))
    with pytest.raises(TelegramNetworkError):
        await FAST(flaky, None, send)  # type: ignore[arg-type]
    assert flaky.calls == 1


WARNING = SendMessage(chat_id=1, text="token expires soon")


def _refused_connection() -> TelegramNetworkError:
    """What aiogram raises when the connection was never made: the request never left."""
    key = ConnectionKey("api.telegram.org", 443, True, None, None, None, None)
    cause = ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    error = TelegramNetworkError(method=WARNING, message=f"ClientConnectorError: {cause}")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "maybe_arrived",
    [
        TelegramNetworkError(method=WARNING, message="Request timeout error"),
        TelegramServerError(method=WARNING, message="Bad Gateway"),
    ],
)
async def test_an_at_most_once_send_that_may_have_arrived_is_not_repeated(
    maybe_arrived: Exception,
) -> None:
    flaky = Flaky(maybe_arrived)
    with at_most_once(), pytest.raises(type(maybe_arrived)):
        await FAST(flaky, None, WARNING)  # type: ignore[arg-type]
    assert flaky.calls == 1
    # Outside the block the same send is repeated as before.
    again = Flaky(maybe_arrived)
    assert await FAST(again, None, WARNING) == "ok"  # type: ignore[arg-type]
    assert again.calls == 2


async def test_an_at_most_once_send_telegram_never_saw_is_repeated() -> None:
    flaky = Flaky(
        _refused_connection(),
        TelegramRetryAfter(method=WARNING, message="Too Many Requests", retry_after=0),
    )
    with at_most_once():
        assert await FAST(flaky, None, WARNING) == "ok"  # type: ignore[arg-type]
    assert flaky.calls == 3


async def test_a_polling_conflict_is_loud() -> None:
    poll = GetUpdates()
    flaky = Flaky(
        TelegramConflictError(method=poll, message="Conflict: terminated by other getUpdates")
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(TelegramConflictError):
        await FAST(flaky, None, poll)  # type: ignore[arg-type]
    assert flaky.calls == 1
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("telegram.conflict", "critical")
    ]


async def test_a_webhook_set_while_running_is_told_apart_from_a_second_poller() -> None:
    poll = GetUpdates()
    flaky = Flaky(
        TelegramConflictError(
            method=poll,
            message="Conflict: can't use getUpdates method while webhook is active;"
            " use deleteWebhook to delete the webhook first",
        )
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(TelegramConflictError):
        await FAST(flaky, None, poll)  # type: ignore[arg-type]
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("telegram.webhook_conflict", "critical")
    ]
