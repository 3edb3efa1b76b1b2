"""The send budget: every message the bot sends waits its turn inside Telegram's limits.

Telegram allows about one message a second in a chat, 20 a minute in a group and
about 30 a second for the whole bot; going over earns 429 and, when persistent,
longer bans. A request middleware on the bot's session spends from this budget
before each message leaves, so scheduled sends, notices, caption edits and command
replies all share it. The wait is inside the HTTP call: a delivery has finished its
database work (its claim is renewed meanwhile) and holds no connection.

The whole-bot rate is aiolimiter's leaky bucket (its waiters are served first come,
first served, so no chat starves). A leaky bucket of capacity c and rate r admits at
most c + r·T sends in any window T; the defaults keep that under Telegram's 30 a
second with room for network jitter. A chat's limits are sliding windows of its own
recent sends, checked under the chat's lock at the moment the bot-wide bucket admits
the send: a leaky bucket consumes capacity as it is waited for, so a chat whose send
then waited for the whole bot's turn could go out closer than a second to its last.
A press's toast (answerCallbackQuery) carries no chat and never waits here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.methods.base import TelegramType as T
from aiolimiter import AsyncLimiter

from bot.request_middleware import Method, Next

logger = structlog.get_logger(__name__)

# The Bot API methods that put (or change) a message in a chat: what Telegram's limits count.
SPENDING_PREFIXES = ("send", "edit", "copy", "forward")
# Past this many chats remembered, the quiet ones are forgotten (private chats come and go).
MOST_LANES = 10_000


@dataclass(slots=True)
class Departure:
    """Where a watched send stands: waiting for the budget with nothing sent before it,
    nothing has left (a repeat by the retrying middleware waits here after one left)."""

    waiting_for_budget: bool = False
    any_left: bool = False

    @property
    def nothing_left(self) -> bool:
        """Cancelled now, no request of the watched send can have reached Telegram."""
        return self.waiting_for_budget and not self.any_left


# The departure the current task watches (a context variable: the request middleware
# runs in the sender's own task).
_watched: ContextVar[Departure | None] = ContextVar("storyqueue_departure", default=None)


@contextlib.contextmanager
def watch_departure() -> Iterator[Departure]:
    """Learn whether a send cancelled inside this block was still waiting for the budget."""
    departure = Departure()
    token = _watched.set(departure)
    try:
        yield departure
    finally:
        _watched.reset(token)


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The budget's rates, each a little under Telegram's so that jitter never crosses them."""

    # Whole bot: a burst of `bot_burst`, then `bot_per_second` (≤ 28 in any second).
    bot_per_second: float = 25.0
    bot_burst: int = 3
    # One chat: sends at least this far apart (Telegram: about one a second).
    chat_interval_seconds: float = 1.1
    # One group (a negative chat id): at most this many in any `group_window_seconds`.
    group_per_window: int = 18
    group_window_seconds: float = 60.0
    # A 429 up to this long holds its chat (or the bot) here; a longer flood wait is
    # left to the caller, which gets the error (as the retrying middleware leaves it).
    longest_pause_seconds: float = 30.0


@dataclass
class _ChatLane:
    """One chat's recent sends and the lock that orders its senders."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent_at: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0
    waiting: list[float] = field(default_factory=list)


def chat_of(method: TelegramMethod[TelegramType]) -> int | None:
    """The numeric chat a spending method writes to; None for everything else."""
    name = method.__api_method__
    if not name.startswith(SPENDING_PREFIXES):
        return None
    chat_id = getattr(method, "chat_id", None)
    if isinstance(chat_id, int):
        return chat_id
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        return int(chat_id)
    # An inline message edit or a @channel name: counted for the whole bot only.
    return 0


class SendBudget:
    """Waits each message until the chat's and the bot's limits let it go."""

    def __init__(
        self,
        limits: BudgetLimits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or BudgetLimits()
        self._monotonic = monotonic
        self._bot = AsyncLimiter(
            self.limits.bot_burst, self.limits.bot_burst / self.limits.bot_per_second
        )
        self._bot_paused_until = 0.0
        self._lanes: dict[int, _ChatLane] = {}

    def _lane(self, chat_id: int) -> _ChatLane:
        lane = self._lanes.get(chat_id)
        if lane is None:
            lane = self._lanes[chat_id] = _ChatLane()
        return lane

    def waiting(self, chat_id: int) -> tuple[int, float] | None:
        """(messages waiting for the budget, seconds the oldest has waited) or None."""
        lane = self._lanes.get(chat_id)
        if lane is None or not lane.waiting:
            return None
        return len(lane.waiting), self._monotonic() - min(lane.waiting)

    def pause(self, chat_id: int | None, seconds: float) -> None:
        """Telegram said 429: nothing more for the chat (None: the whole bot) for `seconds`.

        A longer flood wait than `longest_pause_seconds` is not held here: waiting it
        out inside every call would stall the caller's loop; the caller has the 429
        and its own rule for when to try again (delivery waits outside its slot).
        """
        if seconds > self.limits.longest_pause_seconds:
            logger.warning("budget.flood_wait_left_to_caller", chat_id=chat_id, seconds=seconds)
            return
        until = self._monotonic() + seconds
        if chat_id is None:
            self._bot_paused_until = max(self._bot_paused_until, until)
        else:
            lane = self._lane(chat_id)
            lane.paused_until = max(lane.paused_until, until)
        logger.warning("budget.paused", chat_id=chat_id, seconds=seconds)

    def _chat_delay(self, chat_id: int, lane: _ChatLane, now: float) -> float:
        """How long until the chat's own limits let one more send go (0: now)."""
        window = self.limits.group_window_seconds
        while lane.sent_at and lane.sent_at[0] <= now - window:
            lane.sent_at.popleft()
        delay = lane.paused_until - now
        if lane.sent_at:
            delay = max(delay, lane.sent_at[-1] + self.limits.chat_interval_seconds - now)
        if chat_id < 0 and len(lane.sent_at) >= self.limits.group_per_window:
            delay = max(delay, lane.sent_at[-self.limits.group_per_window] + window - now)
        return delay

    def _forget_quiet_lanes(self) -> None:
        """Drop the chats with nothing waiting and nothing sent within the group window."""
        horizon = self._monotonic() - self.limits.group_window_seconds
        for chat_id, lane in list(self._lanes.items()):
            quiet = not lane.sent_at or lane.sent_at[-1] <= horizon
            if quiet and not lane.waiting and not lane.lock.locked():
                del self._lanes[chat_id]

    async def _bot_turn(self) -> None:
        while True:
            paused = self._bot_paused_until - self._monotonic()
            if paused <= 0:
                break
            await asyncio.sleep(paused)
        await self._bot.acquire()

    async def spend(self, chat_id: int) -> None:
        """Wait until one message may go to `chat_id` (0: no chat of its own) and count it."""
        if chat_id == 0:
            await self._bot_turn()
            return
        lane = self._lane(chat_id)
        entered = self._monotonic()
        lane.waiting.append(entered)
        try:
            async with lane.lock:
                # Under the lock nobody else spends this chat's budget: its delay only
                # shrinks while we wait for the bot's turn, unless a 429 paused the chat.
                while True:
                    delay = self._chat_delay(chat_id, lane, self._monotonic())
                    if delay > 0:
                        await asyncio.sleep(delay)
                        continue
                    await self._bot_turn()
                    if self._chat_delay(chat_id, lane, self._monotonic()) <= 0:
                        break
                lane.sent_at.append(self._monotonic())
        finally:
            lane.waiting.remove(entered)
            if len(self._lanes) > MOST_LANES:
                self._forget_quiet_lanes()
        waited = self._monotonic() - entered
        if waited > 1.5:
            logger.info("budget.waited", chat_id=chat_id, seconds=round(waited, 2))


class SendBudgetMiddleware(BaseRequestMiddleware):
    """Spends from the budget before each message leaves; a 429 pauses the chat or the bot."""

    def __init__(self, budget: SendBudget) -> None:
        self._budget = budget

    async def __call__(self, make_request: Next[T], bot: Bot, method: Method[T]) -> Response[T]:
        chat_id = chat_of(method)
        if chat_id is not None:
            departure = _watched.get()
            if departure is not None:
                # Left set if this wait is cancelled: the message certainly never left.
                departure.waiting_for_budget = True
            await self._budget.spend(chat_id)
            if departure is not None:
                departure.waiting_for_budget = False
                departure.any_left = True
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as error:
            # A 429 on a message to a chat holds that chat; on anything else, the bot.
            self._budget.pause(chat_id or None, float(error.retry_after))
            raise
