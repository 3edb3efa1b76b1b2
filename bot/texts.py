"""What the bot says: replies, toasts and status lines, apart from the handlers that say them.

Replies are HTML (the bot's parse mode); toasts and the status lines appended to a
caption are plain text (`bot.captions.with_status` escapes them). Caption building
stays in `bot.captions`.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from db.models import ChatSettings

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
