"""Caption building (HTML parse mode); the other texts are in `bot.presentation.texts`.

Status lines are plain text: a toast (answerCallbackQuery) shows them as they
are, and `with_status` escapes them when it appends them to an HTML caption.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.services.instagram import InstagramError
    from bot.services.press import PressOutcome

from bot.limits import CAPTION_LIMIT, fit_plain, visible_length
from db.vocabulary import HistoryStatus, PostingMethod

STATUS_VERBS: dict[str, tuple[str, str]] = {
    HistoryStatus.POSTED: ("✅", "Posted"),
    HistoryStatus.SKIPPED: ("⏭️", "Skipped"),
    HistoryStatus.REJECTED: ("🚫", "Rejected"),
}
# The notification's last paragraph starts with this; anything after it is a status.
META_PREFIX = "📄"


# Telegram's 1,024 for a caption holds the notification and, later, one status line.
STATUS_ROOM = 256
BODY_LIMIT = CAPTION_LIMIT - STATUS_ROOM
FILE_NAME_MAX = 120
CATEGORY_MAX = 60
MANUAL_ONLY_REASON_MAX = 160
MANUAL_ONLY_LINE = "✋ Manual only: "


def shortened(name: str, most: int) -> str:
    """A long name cut in the middle (its start and its extension both stay readable)."""
    if len(name) <= most:
        return name
    half = (most - 1) // 2
    return f"{name[:half]}…{name[-half:]}"


def notification_caption(
    file_name: str, category: str | None, caption: str | None, *, manual_only: str | None = None
) -> str:
    """The queue message's caption; a long caption is cut so a status line still fits.

    `manual_only`: why Instagram would refuse the file, said where the 🤖 button would be.
    """
    meta = f"{META_PREFIX} <code>{escape(shortened(file_name, FILE_NAME_MAX))}</code>"
    if category:
        meta += f" · #{escape(shortened(category, CATEGORY_MAX).replace(' ', '_'))}"
    if manual_only:
        # Same paragraph as the file name: body_of keeps it when a status is appended.
        meta += f"\n{MANUAL_ONLY_LINE}{escape(fit_plain(manual_only, MANUAL_ONLY_REASON_MAX))}"
    if caption:
        room = BODY_LIMIT - visible_length(meta) - 2
        return f"{escape(fit_plain(caption, room))}\n\n{meta}"
    return meta


def says_manual_only(body: str | None) -> bool:
    """The queue message says Instagram would refuse its item: its buttons never offer 🤖."""
    if body is None:
        return False
    meta = body.rfind(META_PREFIX)
    return meta >= 0 and f"\n{MANUAL_ONLY_LINE}" in body[meta:]


def done_line(status: str, name: str, *, instagram: bool = False) -> str:
    emoji, verb = STATUS_VERBS[status]
    where = " to Instagram" if instagram else ""
    return f"{emoji} {verb}{where} by {name}"


def final_line(outcome: PressOutcome) -> str:
    """The caption line for an item someone has acted on (a press or an Auto Post)."""
    assert outcome.status is not None
    return done_line(
        outcome.status,
        outcome.acted_by_name or "someone",
        instagram=outcome.posting_method == PostingMethod.INSTAGRAM_API,
    )


# Auto Post's status lines, under the item while it runs and after it gave the item back
# (the publishing line is the toast's, `texts.AUTOPOST_PROGRESS`).
AUTOPOST_CHECKING_LINE = "🔎 Checking with Instagram…"
AUTOPOST_RECORDING_LINE = "✅ Published to Instagram; recording it…"
AUTOPOST_UNEXPECTED_LINE = (
    "⚠️ Auto Post failed on an unexpected error (logged). Nothing was published."
)
AUTOPOST_DRY_RUN_LINE = "🧪 Dry run: Instagram accepted the story; nothing was published."
AUTOPOST_INTERRUPTED_LINE = "⚠️ Auto Post was interrupted before publishing; nothing was published."


def autopost_failed_line(error: InstagramError) -> str:
    """Plain text: the caption escapes it, a toast shows it as is."""
    return f"⚠️ Auto Post failed: {error.cause}. Nothing was published."


def autopost_checking_line(answer: InstagramError) -> str:
    """Instagram answered but will not tell the outcome (e.g. error 190): what blocks it."""
    return f"{AUTOPOST_CHECKING_LINE} Instagram answered: {answer.cause}."


def already_line(status: str, name: str | None) -> str:
    emoji, verb = STATUS_VERBS.get(status, ("ℹ️", status))
    return f"{emoji} Already {verb.lower()} by {name or 'someone'}"


def body_of(html: str) -> str:
    """The notification without any status paragraph appended after it."""
    paragraphs = html.split("\n\n")
    while len(paragraphs) > 1 and not paragraphs[-1].startswith(META_PREFIX):
        paragraphs.pop()
    return "\n\n".join(paragraphs)


def with_status(html: str, line: str) -> str:
    """The notification (HTML) with one plain-text status line appended, escaped.

    The line is cut to the room the notification keeps for it (`STATUS_ROOM`).
    """
    return f"{body_of(html)}\n\n{escape(fit_plain(line, STATUS_ROOM - 2), quote=False)}"
