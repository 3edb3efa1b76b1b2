"""What the bot says: replies, toasts and status lines, apart from the handlers that say them.

Replies are HTML (the bot's parse mode); toasts and the status lines appended to a
caption are plain text (`bot.presentation.captions.with_status` escapes them). Caption building
stays in `bot.presentation.captions`.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.domain import NothingToSend, SendResult
from bot.limits import MESSAGE_LIMIT, TOAST_LIMIT, fit_plain, utf16_length
from bot.presentation.captions import FILE_NAME_MAX, shortened
from bot.services.accounts.status import AutoPostUnavailable
from db.repositories.instagram_accounts import ExpiryWarning
from db.vocabulary import (
    ExpirySource,
    Framing,
    HistoryStatus,
    InstagramFlavour,
    PostingMethod,
    QueueStatus,
)

if TYPE_CHECKING:
    from bot.services.accounts.care import ExpiryNotice
    from bot.services.accounts.live import LiveView
    from bot.services.accounts.status import InstagramStatus
    from bot.services.accounts.tokens import AccountHealth
    from bot.services.runway import Runway
    from bot.services.team import (
        ChatView,
        DecisionView,
        FileView,
        QueuedView,
        SettingRejectedError,
        StatsView,
        StatusView,
    )
    from db.repositories.stats import NamedItems


COMMANDS: list[tuple[str, str]] = [
    ("start", "what this bot does"),
    ("help", "list the commands"),
    ("status", "running or paused, next slot, last post, library"),
    ("queue", "items waiting for a button press"),
    ("next", "send the next item now"),
    ("history", "the last actions: /history [n]"),
    ("stats", "who decided what, reach by category and hour, with a chart: /stats [days]"),
    ("export", "the chat's history with Story results as a CSV file"),
    ("live", "Stories live on Instagram now"),
    ("pause", "admins: stop scheduled posts"),
    ("resume", "admins: resume scheduled posts"),
    ("settings", "admins: posts per day, window, timezone, dry run, runway warning"),
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
# An alert (a toast): Telegram refuses one over 200 characters.
AUTOPOST_TOKEN_EXPIRED = (
    "🔑 The Instagram token has expired. An admin must put a new long-lived token where "
    "this chat's account reads it and restart the bot. Post by hand meanwhile."
)
AUTOPOST_UNAVAILABLE: dict[AutoPostUnavailable, str] = {
    AutoPostUnavailable.NOT_CONFIGURED: AUTOPOST_NOT_CONFIGURED,
    AutoPostUnavailable.TOKEN_EXPIRED: AUTOPOST_TOKEN_EXPIRED,
}
AUTOPOST_CHECKING = (
    "🔎 Checking with Instagram… An earlier Auto Post of this item may have gone live; "
    "nothing new is created until Instagram says."
)
# The caption of a `publishing` row whose chat lost its Instagram account meanwhile.
AUTOPOST_UNRESOLVABLE = (
    "⚠️ Auto Post is not configured for this chat any more, and the earlier publish's "
    "outcome is unknown: check Instagram before posting by hand."
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


def fit_message(header: str, lines: list[str]) -> str:
    """Header and as many lines as fit in one message, then how many were left out.

    Measured on the HTML in UTF-16 units, which is never shorter than the text
    Telegram counts against its limit.
    """
    kept = [header]
    used = utf16_length(header)
    for shown, line in enumerate(lines):
        left = len(lines) - shown
        # Room for this line and, should more follow, the "left out" note.
        note = f"\n… and {left - 1} more not shown" if left > 1 else ""
        if used + 1 + utf16_length(line) + utf16_length(note) > MESSAGE_LIMIT:
            kept.append(f"… and {left} more not shown")
            break
        kept.append(line)
        used += 1 + utf16_length(line)
    return "\n".join(kept)


def file_label(file_name: str) -> str:
    """A file name for a list line: escaped, long ones shortened in the middle."""
    return f"<code>{escape(shortened(file_name, FILE_NAME_MAX))}</code>"


def render_settings(chat: ChatView) -> str:
    """The /settings message; its buttons are `bot.presentation.keyboards.settings_keyboard`."""
    state = "⏸ paused" if chat.is_paused else "▶️ running"
    return (
        "⚙️ <b>Settings</b>\n"
        f"Status: {state}\n"
        f"Dry run: {'on' if chat.dry_run else 'off'}\n"
        f"Posts per day: {chat.posts_per_day}\n"
        f"Window: {chat.posting_hours_start:02d}:00–{chat.posting_hours_end:02d}:00 "
        f"({escape(chat.timezone)})\n"
        f"Queue topic: {topic_name(chat.message_thread_id)}\n"
        f"Unpressed items return to the library after {chat.sent_ttl_days} days\n"
        f"Runway warning: {runway_threshold(chat.runway_warning_days)}\n"
        f"Instagram photo framing: {FRAMING_NAMES[Framing(chat.photo_framing)]}\n\n"
        "Timezone: <code>/settings tz Europe/Berlin</code>\n"
        "Topic: <code>/settings topic here</code> (typed in the topic), or an id, or off\n"
        "Lifetime: <code>/settings lifetime 7</code> (days)\n"
        "Runway warning: <code>/settings runway 7</code> (days; 0 turns it off)\n"
        "Framing: <code>/settings framing blur</code> (as_is, blur, solid or crop)"
    )


# How a photo that is not 9:16 becomes a Story, as /settings names it.
FRAMING_NAMES = {
    Framing.AS_IS: "as is",
    Framing.BLUR: "on a blurred copy",
    Framing.SOLID: "on a solid colour",
    Framing.CROP: "centre-cropped to 9:16",
}


def framing_set(framing: str) -> str:
    return f"🖼 Photos that are not 9:16 now go to Instagram {FRAMING_NAMES[Framing(framing)]}."


def runway_threshold(days: int) -> str:
    return "off" if not days else f"below {days} day{'s' if days != 1 else ''}"


def topic_name(topic: int | None) -> str:
    return "General" if topic is None else f"#{topic}"


def topic_set(topic: int | None) -> str:
    return f"✅ The queue now lives in the {topic_name(topic)} topic."


def lifetime_set(days: int) -> str:
    return f"✅ Items nobody pressed return to the library after {days} days."


def returned_to_library(file_names: list[str], days: int) -> str:
    """Sent items nobody pressed in time: back in the library, to be sent again later."""
    shown = ", ".join(file_label(name) for name in file_names[:10])
    more = f" and {len(file_names) - 10} more" if len(file_names) > 10 else ""
    return f"↩️ Nobody pressed these in {days} days; they're back in the library: {shown}{more}"


def sent_to_topic(topic: int | None) -> str:
    """/next typed in another topic than the queue's: where the item went."""
    return f"📬 Sent to the queue's topic ({topic_name(topic)})."


# -- command replies (bot.handlers.commands, bot.handlers.admin, bot.handlers.instagram) --

PAUSED = "⏸ Paused: no scheduled posts until /resume."
ALREADY_PAUSED = "Already paused."
RESUMED = "▶️ Resumed."
ALREADY_RUNNING = "Already running."
SETTINGS_USAGE = (
    "Usage: /settings, /settings tz Europe/Berlin, /settings topic here|ID|off,"
    " /settings lifetime DAYS, /settings runway DAYS, /settings framing as_is|blur|solid|crop"
)
TOPIC_USAGE = "A topic is its number (from a message link), “here” inside it, or “off”."
TOPIC_HERE_OUTSIDE = "Type /settings topic here inside the topic the queue should live in."
NOTHING_IN_FLIGHT = "📭 Nothing is waiting for a press."
INFLIGHT_FAILED = "❌ Couldn't do that — please press again"
INFLIGHT_DROPPED = "↩️ Dropped: the item is back in the library."
INFLIGHT_RESENT = "🔁 Sent again; the old message's buttons are gone."
UNCONFIRMED_NOTICE = (
    "⚠️ Telegram didn't confirm that this item arrived. "
    "If you see it above, its buttons work; these work too."
)
INFLIGHT_UNCONFIRMED = "⚠️ Telegram didn't confirm the resend; the chat got its buttons in a notice."
INFLIGHT_CHANGED = "Already pressed, dropped or resent since /queue listed it."
INFLIGHT_BEING_SENT = "⏳ It is being sent right now."
ADMINS_ONLY_INFLIGHT = "⛔ Only admins can drop or resend an item."
NO_HISTORY = "No history yet."
NO_PRESSES = "No presses recorded yet."
CHART_CAPTION = "📈 Presses per day, last 4 weeks, by person; below, reach by weekday and hour"
EXPORT_CAPTION = "🧾 History with Story results (CSV)"
NO_EXPORT = "No history to export yet."
NO_LIVE_STORIES = "📭 No Stories are live on Instagram right now."

QUEUE_STATES: dict[str, str] = {
    QueueStatus.SENT: "waiting for a press",
    QueueStatus.SENDING: "being sent",
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


def set_aside_text(items: list[FileView]) -> str:
    """/queue's list of set-aside items, each with why."""
    lines = [
        f"• {file_label(item.file_path)} — {escape(fit_plain(item.set_aside_reason or '?', 300))}"
        for item in items
    ]
    return fit_message(
        f"⚠️ <b>{len(items)} set aside</b> (fix the file and index again, or ↩️ Put back)", lines
    )


def chat_migrated_notice(old_chat_id: int, new_chat_id: int) -> str:
    return (
        "ℹ️ Telegram upgraded this group to a supergroup. The queue, the library, the"
        " settings and the history moved here with it; nothing was lost."
    )


def setting_rejected(rejected: SettingRejectedError) -> str:
    """Why a settings change was refused (plain text: a toast, or escaped into a reply)."""
    lowest, highest = rejected.lowest, rejected.highest
    if rejected.column == "timezone":
        # Typed by the admin, at any length.
        named = fit_plain(str(rejected.value), 100)
        return f"Unknown timezone “{named}”. Use an IANA name such as Europe/Berlin."
    if rejected.column == "message_thread_id":
        return "A topic is a positive number, or “off” for General."
    if rejected.column == "posts_per_day":
        return f"Posts per day must stay between {lowest} and {highest}."
    if rejected.column == "sent_ttl_days":
        return f"The lifetime is a number of days between {lowest} and {highest}."
    if rejected.column == "runway_warning_days":
        return f"The runway warning takes a number of days from {lowest} (off) to {highest}."
    if rejected.column == "photo_framing":
        return f"Framing is one of: {', '.join(Framing)}."
    return "That button is out of date."


def timezone_set(timezone: str) -> str:
    return f"🌍 Timezone set to {escape(timezone)}."


def autopost_manual_only(reason: str) -> str:
    """The alert for 🤖 on an item Instagram would refuse (plain text, a toast's 200)."""
    return fit_plain(
        f"✋ Manual only: Instagram would refuse it ({reason}). Post it by hand.", TOAST_LIMIT
    )


def runway_threshold_set(days: int) -> str:
    if not days:
        return "📆 Runway warning turned off."
    return f"📆 I'll warn this chat when the library lasts fewer than {days} days."


def history_usage(most: int) -> str:
    return f"Usage: /history [n] with n from 1 to {most}."


def stats_usage(most: int) -> str:
    return f"Usage: /stats [days] with days from 1 to {most} (default 30)."


def budget_wait_line(messages: int, seconds: float) -> str:
    """/status: this chat's messages waiting for Telegram's send budget."""
    return (
        f"⏳ Waiting for Telegram's send budget: {messages} message(s),"
        f" the oldest for {seconds:.0f} s"
    )


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
    if view.runway is not None:
        lines.append(runway_line(view.runway))
    lines.extend(instagram)
    return "\n".join(lines)


def manual_only_mark(reason: str | None) -> str:
    """/queue's mark for an item Instagram would refuse: no 🤖, and why."""
    return f" · ✋ manual only: {escape(fit_plain(reason, 80))}" if reason else ""


def queue_text(rows: list[tuple[QueuedView, FileView]], now: datetime) -> str:
    lines = [
        f"{position}. {file_label(media.file_name)} — "
        f"{QUEUE_STATES.get(item.status, item.status)}, {ago(item.created_at, now)}"
        f"{manual_only_mark(media.autopost_refusal)}"
        for position, (item, media) in enumerate(rows, 1)
    ]
    return fit_message(f"📬 <b>{len(rows)} in flight</b>", lines)


def history_text(rows: list[tuple[DecisionView, FileView]], now: datetime) -> str:
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


def category_label(category: str | None) -> str:
    return escape(category) if category else "(no folder)"


def days_text(days: float) -> str:
    whole = int(days)
    return f"{whole} day{'s' if whole != 1 else ''}"


def runway_line(runway: Runway) -> str:
    """/status: "41 days left at 3 a day; cakes runs out in 6 days"."""
    rate = f"at {runway.posts_per_day} a day"
    if runway.days is None:
        text = f"📆 Runway: over a year {rate}"
    elif runway.days < 1:
        text = f"📆 Runway: less than a day left {rate}"
    else:
        text = f"📆 Runway: {days_text(runway.days)} left {rate}"
    shortest = runway.shortest
    if shortest is not None and shortest.days is not None:
        label = category_label(shortest.category)
        if shortest.days < 1:
            text += f"; {label} has run out"
        else:
            text += f"; {label} runs out in {days_text(shortest.days)}"
    return text


def runway_warning(runway: Runway, threshold: int) -> str:
    """The once-per-drop warning that the library is running dry."""
    return (
        f"⚠️ <b>The library is running low.</b> {runway_line(runway).removeprefix('📆 ')}, "
        f"below this chat's {threshold}-day warning. Add media and run "
        "<code>python -m bot index</code>, or lower the posts per day in /settings."
    )


def duration_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    if minutes < 36 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def stats_text(view: StatsView) -> str:
    """/stats: people (keyed by user id), categories, reach by hour, items to look at.

    Cut below Telegram's 4,096 characters like every list (`fit_message`).
    """
    lines = ["<b>People</b> — posted / skipped / rejected"]
    for person in view.people:
        decided = f"{person.decisions} decisions"
        if person.median_seconds is not None:
            decided += f", median {duration_text(person.median_seconds)} from arrival"
        lines.append(
            f"{escape(person.name)}: 7d {'/'.join(map(str, person.week))} · "
            f"30d {'/'.join(map(str, person.month))} · all {'/'.join(map(str, person.total))}"
            f" · {decided}"
        )
    if view.categories:
        lines.append("<b>Categories</b> — decisions, skipped, rejected, average reach")
        for row in view.categories:
            reach = (
                f"reach {row.average_reach:.0f} ({row.results} Stories)"
                if row.average_reach is not None
                else "no Story results"
            )
            lines.append(
                f"{category_label(row.category)}: {row.decisions}, "
                f"{_share(row.skipped, row.decisions)} skipped, "
                f"{_share(row.rejected, row.decisions)} rejected, {reach}"
            )
    hours = _reach_by_hour(view)
    if hours:
        lines.append(f"<b>Reach by hour</b> ({escape(view.timezone)}), best first")
        lines.append(" · ".join(f"{hour:02d}:00 {reach:.0f}" for hour, reach in hours[:8]))
    lines.append(_items_line("📭 Never sent", view.never_sent))
    lines.append(_items_line("⏭️ Skipped 3+ times", view.skipped_often))
    return fit_message(f"📊 <b>Last {view.days} days</b>", lines)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _reach_by_hour(view: StatsView) -> list[tuple[int, float]]:
    """Average reach per hour of the day (all weekdays), best first."""
    totals: dict[int, tuple[float, int]] = {}
    for cell in view.reach_by_hour:
        reach, stories = totals.get(cell.hour, (0.0, 0))
        totals[cell.hour] = (reach + cell.value * cell.count, stories + cell.count)
    averages = [(hour, reach / stories) for hour, (reach, stories) in totals.items() if stories]
    return sorted(averages, key=lambda entry: (-entry[1], entry[0]))


def _items_line(title: str, items: NamedItems) -> str:
    if not items.total:
        return f"{title}: none"
    names = [file_label(name) for name in items.shown]
    if items.times:
        names = [f"{name} ({times}×)" for name, times in zip(names, items.times, strict=True)]
    more = f" and {items.total - len(names)} more" if items.total > len(names) else ""
    return f"{title}: {items.total} — {', '.join(names)}{more}"


def nothing_sent_text(result: SendResult) -> str:
    """/next when nothing went out: why."""
    if result.error:
        # An error's text can be anything Telegram or the OS said, at any length.
        return f"⚠️ Couldn't send the next item: {escape(fit_plain(result.error, 1000))}"
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


def live_failed(cause: str) -> str:
    """/live when Instagram could not be read: why."""
    return f"⚠️ Couldn't read the live Stories: {escape(fit_plain(cause, 1000))}."


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


# -- Instagram accounts (/live, /status, the token warnings) -------------------------------

_HOW_TO_CONFIGURE = (
    "Instagram isn't configured for this chat. Set INSTAGRAM_USER_ID, "
    "INSTAGRAM_ACCESS_TOKEN and MEDIA_PUBLIC_BASE_URL (one chat), or add the chat to "
    "the INSTAGRAM_ACCOUNTS_FILE (several chats), then restart the bot. "
    "The README's “Instagram” section explains both token flavours."
)
_RENEW_TOKEN = (
    "an admin must create a new long-lived token, put it in the environment variable "
    "or token file this chat's account names (INSTAGRAM_ACCESS_TOKEN for one chat), "
    "and restart the bot"
)

LIVE_NOT_CONFIGURED = f"📡 {escape(_HOW_TO_CONFIGURE)}"


def instagram_status_lines(status: InstagramStatus | None) -> list[str]:
    """/status: usage today and the token's days left; nothing without an account."""
    if status is None:
        return []
    if status.quota is not None:
        usage = f"📸 Instagram: {status.quota.used}/{status.quota.total} today"
    else:
        cause = status.quota_refused.cause if status.quota_refused else "no answer in time"
        usage = f"📸 Instagram: usage unknown ({cause})"
    return [usage, token_line(status.health, status.now)]


def token_line(health: AccountHealth | None, now: datetime) -> str:
    if health is None:
        return "🔑 Token: not checked yet"
    days = health.days_left(now)
    if days is None:
        text = "🔑 Token: never expires"
    elif days <= 0:
        text = "🔑 Token: <b>expired</b> — renew it (see the README)"
    else:
        assumed = (
            " (assumed: 60 days from first use)"
            if health.expires_at_source == ExpirySource.ASSUMED
            else ""
        )
        left = "less than a day" if days < 1 else f"{days:.0f} days"
        text = f"🔑 Token: {left} left{assumed}"
    if health.last_refresh_error:
        text += " · automatic refresh failing"
    elif health.flavour is InstagramFlavour.INSTAGRAM:
        text += " · refreshed automatically"
    return text


def expiry_warning(notice: ExpiryNotice) -> str:
    """The admins' warning that the chat's token expires soon, or has expired."""
    why = ""
    if notice.refresh_failed:
        error = notice.last_refresh_error
        why = " Refreshing it automatically failed" + (f": {escape(error)}." if error else ".")
    renew = f"To keep 🤖 Auto Post working, {_RENEW_TOKEN}."
    when = notice.expires_at.strftime("%d %b %Y %H:%M UTC")
    if notice.kind is ExpiryWarning.EXPIRED:
        return (
            f"⛔ <b>Admins:</b> the Instagram token expired on {when}; 🤖 Auto Post "
            f"stops working until it is renewed.{why} {renew}"
        )
    days = "1 day" if notice.kind is ExpiryWarning.ONE_DAY else f"{max(1, notice.left.days)} days"
    return f"⚠️ <b>Admins:</b> the Instagram token expires in about {days} ({when}).{why} {renew}"
