"""What the bot says: replies, toasts and status lines, apart from the handlers that say them.

Replies are HTML (the bot's parse mode); toasts and the status lines appended to a
caption are plain text (`bot.captions.with_status` escapes them). Caption building
stays in `bot.captions`.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.services.scheduler import NothingToSend
from db.models import ChatSettings
from db.vocabulary import HistoryStatus, PostingMethod, QueueStatus

if TYPE_CHECKING:
    from bot.services.instagram_accounts import LiveView
    from bot.services.scheduler import SendResult
    from bot.services.team import PersonStats, StatusView
    from db.models import MediaItem, PostingHistory, PostingQueueItem

MESSAGE_LIMIT = 4096  # Telegram's limit for a message's text
FILE_NAME_MAX = 120  # characters of a file name shown in a list

COMMANDS: list[tuple[str, str]] = [
    ("start", "what this bot does"),
    ("help", "list the commands"),
    ("status", "running or paused, next slot, last post, library"),
    ("queue", "items waiting for a button press"),
    ("next", "send the next item now"),
    ("history", "the last actions: /history [n]"),
    ("stats", "who posted, skipped, rejected, with a chart"),
    ("live", "Stories live on Instagram now"),
    ("pause", "admins: stop scheduled posts"),
    ("resume", "admins: resume scheduled posts"),
    ("settings", "admins: posts per day, window, timezone, dry run"),
]

HELP = "\n".join(f"/{name} — {escape(text)}" for name, text in COMMANDS)

INTRO = (
    "👋 I run this team's Instagram Story queue.\n\n"
    "At each slot of the posting window I send the next item here with buttons: "
    "✅ Posted once you've posted it, ⏭️ Skip to pass for now, 🚫 Reject to never see it "
    "again. Every press is recorded once, with who did it.\n\n"
    "/help lists the commands."
)

# The chat gate's refusals (bot.middlewares).
PRIVATE_CHAT_REFUSED = (
    "In a private chat I only answer /start and /help. The other commands work in the team chat."
)
FOREIGN_CHAT_REFUSED = "Sorry — I only work in my team's chat."
FOREIGN_CHAT_BUTTON = "⚠️ This bot doesn't serve this chat."
MESSAGE_TOO_OLD = "⚠️ This message is too old to act on."
NOT_ALLOWED = "⛔ You're not allowed to act on the queue."

# The admin router's refusals (bot.handlers.admin).
ADMINS_ONLY_COMMAND = "⛔ Only admins can do that."
ADMINS_ONLY_SETTINGS = "⛔ Only admins can change settings."

# Queue buttons.
PRESS_FAILED = "❌ Couldn't record that — please press again"
PRESS_CRASHED = "❌ Something went wrong — please press again"
RECORDING = "⏳ Recording…"
REJECT_PROMPT = "🚫 Reject this item for good? It will never be sent again."
REJECT_CANCELLED = "Kept in the queue"
AUTOPOST_BUSY = "🤖 An Auto Post of this item is in progress."
WRONG_CHAT_ITEM = "⚠️ That item isn't in this chat's queue."
UNKNOWN_ITEM = "⚠️ That item is no longer in the queue."
AUTOPOST_PROGRESS = "⏳ Publishing to Instagram…"
AUTOPOST_NOT_CONFIGURED = "🤖 Auto Post isn't configured for this chat."
AUTOPOST_CHECKING = (
    "🔎 Checking with Instagram… An earlier Auto Post of this item may have gone live; "
    "nothing new is created until Instagram says."
)
AUTOPOST_SENDING = "⏳ This item is still being sent to the chat; press again in a moment."
BUTTON_NO_LONGER_VALID = "⚠️ This button is no longer valid."

# Settings.
PUT_BACK_DONE = "↩️ Put back: it can be sent again."
PUT_BACK_ALREADY = "Already back: it can be sent."
ADMINS_ONLY_PUT_BACK = "⛔ Only admins can put an item back."
SETTING_SAVED = "Saved"
SETTING_ALREADY_SET = "Already set"

DATABASE_UNAVAILABLE = "❌ The database can't be reached right now — please try again in a minute."


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def local(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M")


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit_message(header: str, lines: list[str]) -> str:
    """Header and as many lines as fit in one message, then how many were left out.

    Measured on the HTML in UTF-16 units, which is never shorter than the text
    Telegram counts against its limit.
    """
    kept = [header]
    used = _utf16_length(header)
    for shown, line in enumerate(lines):
        left = len(lines) - shown
        # Room for this line and, should more follow, the "left out" note.
        note = f"\n… and {left - 1} more not shown" if left > 1 else ""
        if used + 1 + _utf16_length(line) + _utf16_length(note) > MESSAGE_LIMIT:
            kept.append(f"… and {left} more not shown")
            break
        kept.append(line)
        used += 1 + _utf16_length(line)
    return "\n".join(kept)


def file_label(file_name: str) -> str:
    """A file name for a list line: escaped, long ones shortened in the middle."""
    if len(file_name) > FILE_NAME_MAX:
        half = (FILE_NAME_MAX - 1) // 2
        file_name = f"{file_name[:half]}…{file_name[-half:]}"
    return f"<code>{escape(file_name)}</code>"


def render_settings(chat: ChatSettings) -> str:
    """The /settings message; its buttons are `bot.keyboards.settings_keyboard`."""
    state = "⏸ paused" if chat.is_paused else "▶️ running"
    return (
        "⚙️ <b>Settings</b>\n"
        f"Status: {state}\n"
        f"Dry run: {'on' if chat.dry_run else 'off'}\n"
        f"Posts per day: {chat.posts_per_day}\n"
        f"Window: {chat.posting_hours_start:02d}:00–{chat.posting_hours_end:02d}:00 "
        f"({escape(chat.timezone)})\n\n"
        "Timezone: <code>/settings tz Europe/Berlin</code>"
    )


# -- command replies (bot.handlers.commands, bot.handlers.admin, bot.handlers.instagram) --

PAUSED = "⏸ Paused: no scheduled posts until /resume."
ALREADY_PAUSED = "Already paused."
RESUMED = "▶️ Resumed."
ALREADY_RUNNING = "Already running."
SETTINGS_USAGE = "Usage: /settings, or /settings tz Europe/Berlin"
NOTHING_IN_FLIGHT = "📭 Nothing is waiting for a press."
NO_HISTORY = "No history yet."
NO_PRESSES = "No presses recorded yet."
CHART_CAPTION = "📈 Presses per day, last 4 weeks, by person"
NO_LIVE_STORIES = "📭 No Stories are live on Instagram right now."

QUEUE_STATES: dict[str, str] = {
    QueueStatus.SENT: "waiting for a press",
    QueueStatus.SENDING: "being sent",
    QueueStatus.PENDING: "queued",
    QueueStatus.PUBLISHING: "being posted to Instagram",
}
HISTORY_ICONS: dict[str, str] = {
    HistoryStatus.POSTED: "✅",
    HistoryStatus.SKIPPED: "⏭️",
    HistoryStatus.REJECTED: "🚫",
    HistoryStatus.FAILED: "⚠️",
}


def _shortened(text: str, limit: int = 500) -> str:
    """Long text cut in the middle, so a message that quotes it stays within Telegram's limit."""
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-(limit // 2) :]}"


def set_aside_notice(file_path: str, reason: str) -> str:
    """Told once, when a send sets an item aside: which file, why, what to do."""
    return (
        f"⚠️ Set aside: {file_label(file_path)}\n"
        f"Telegram can't take it or the file can't be read: {escape(_shortened(reason))}\n\n"
        "It won't be sent again as it is. Fix or replace the file and run "
        "<code>python -m bot index</code> again, or press ↩️ Put back."
    )


def set_aside_text(items: list[MediaItem]) -> str:
    """/queue's list of set-aside items, each with why."""
    lines = [
        f"• {file_label(item.file_path)} — {escape(item.set_aside_reason or '?')}" for item in items
    ]
    return fit_message(
        f"⚠️ <b>{len(items)} set aside</b> (fix the file and index again, or ↩️ Put back)", lines
    )


def timezone_set(timezone: str) -> str:
    return f"🌍 Timezone set to {escape(timezone)}."


def history_usage(most: int) -> str:
    return f"Usage: /history [n] with n from 1 to {most}."


def status_text(view: StatusView, now: datetime, instagram: list[str]) -> str:
    """/status: running or paused, the queue, the next slot, the last post, the library."""
    chat = view.chat
    lines = []
    if chat.is_paused:
        who = escape(view.paused_by or "someone")
        since = local(chat.paused_at, chat.timezone) if chat.paused_at else "?"
        lines.append(f"⏸ <b>Paused</b> by {who} since {since}")
    else:
        lines.append("▶️ <b>Running</b>" + (" (dry run)" if chat.dry_run else ""))
    lines.append(f"📬 In flight: {view.in_flight}")
    if view.next_slot is not None:
        lines.append(
            f"⏰ Next slot: {local(view.next_slot, chat.timezone)} ({escape(chat.timezone)})"
        )
    if view.last_post is not None:
        last = view.last_post
        lines.append(
            f"🕘 Last post: <code>{escape(view.last_post_file or '?')}</code> by "
            f"{escape(last.acted_by_name or 'someone')}, {ago(last.acted_at, now)}"
        )
    else:
        lines.append("🕘 Last post: none yet")
    lines.append(f"🗂 Library: {view.library} items, {view.eligible} eligible now")
    if view.set_aside:
        lines.append(
            f"⚠️ Set aside: {view.set_aside} "
            "(Telegram refused them or the file is gone; /queue lists them)"
        )
    if chat.posts_per_day:
        days = view.eligible / chat.posts_per_day
        lines.append(
            f"📆 The eligible pool lasts about {days:.0f} days at {chat.posts_per_day} a day"
        )
    lines.extend(instagram)
    return "\n".join(lines)


def queue_text(rows: list[tuple[PostingQueueItem, MediaItem]], now: datetime) -> str:
    lines = [
        f"{position}. {file_label(media.file_name)} — "
        f"{QUEUE_STATES.get(item.status, item.status)}, {ago(item.created_at, now)}"
        for position, (item, media) in enumerate(rows, 1)
    ]
    return fit_message(f"📬 <b>{len(rows)} in flight</b>", lines)


def history_text(rows: list[tuple[PostingHistory, MediaItem]], now: datetime) -> str:
    lines = []
    for entry, media in rows:
        who = escape(entry.acted_by_name or "the bot")
        via = " via Instagram" if entry.posting_method == PostingMethod.INSTAGRAM_API else ""
        what = entry.status + via
        lines.append(
            f"{HISTORY_ICONS.get(entry.status, '•')} {file_label(media.file_name)} — "
            f"{what} by {who}, {ago(entry.acted_at, now)}"
        )
    return fit_message(f"🧾 <b>Last {len(rows)}</b>", lines)


def stats_text(people: list[PersonStats]) -> str:
    lines = ["📊 <b>posted / skipped / rejected</b>"]
    for person in people:
        lines.append(
            f"{escape(person.name)}: 7d {'/'.join(map(str, person.week))} · "
            f"30d {'/'.join(map(str, person.month))} · all {'/'.join(map(str, person.total))}"
        )
    return "\n".join(lines)


def nothing_sent_text(result: SendResult) -> str:
    """/next when nothing went out: why."""
    if result.error:
        return f"⚠️ Couldn't send the next item: {escape(result.error)}"
    if result.reason is NothingToSend.EMPTY_LIBRARY:
        return (
            "📭 Nothing to send: the library is empty. "
            "Index media with <code>python -m bot index DIR</code>."
        )
    if result.reason is NothingToSend.ALL_QUEUED:
        return (
            f"📬 Nothing to send: every unlocked item is already in the queue "
            f"({result.queued} in flight)."
        )
    if result.set_aside:
        return (
            f"🔒 Nothing to send: all {result.total} items are locked, set aside or in the queue "
            f"({result.locked} locked, {result.set_aside} set aside, {result.queued} in flight). "
            "/queue lists the items set aside."
        )
    return (
        f"🔒 Nothing to send: all {result.total} items are locked "
        f"(recently posted, skipped or rejected) or in the queue "
        f"({result.locked} locked, {result.queued} in flight)."
    )


def live_text(view: LiveView, now: datetime) -> str:
    """/live: each Story live now, and whether (and by whom) it came from the queue."""
    header = f"📡 <b>{len(view.entries)} live on Instagram</b> (Stories last 24 h)"
    lines = []
    for entry in view.entries:
        posted = entry.story.posted_at
        when = f"{local(posted, view.timezone)} ({ago(posted, now)})" if posted else "time unknown"
        if entry.ours is None:
            what = "not from this queue"
        else:
            who = escape(entry.ours.acted_by_name or "someone")
            what = f"{file_label(entry.ours.file_name)}, 🤖 by {who}"
        lines.append(f"• {when} — {what}")
    # Up to 100 Stories a day would outgrow one message, which Telegram then refuses.
    return fit_message(header, lines)
