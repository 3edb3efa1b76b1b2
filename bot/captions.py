"""Caption building (HTML parse mode); the other texts are `bot.texts`'s.

Status lines are plain text: a toast (answerCallbackQuery) shows them as they
are, and `with_status` escapes them when it appends them to an HTML caption.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.services.press import PressOutcome

from db.vocabulary import HistoryStatus, PostingMethod

STATUS_VERBS: dict[str, tuple[str, str]] = {
    HistoryStatus.POSTED: ("✅", "Posted"),
    HistoryStatus.SKIPPED: ("⏭️", "Skipped"),
    HistoryStatus.REJECTED: ("🚫", "Rejected"),
}
# The notification's last paragraph starts with this; anything after it is a status.
META_PREFIX = "📄"


def notification_caption(file_name: str, category: str | None, caption: str | None) -> str:
    meta = f"{META_PREFIX} <code>{escape(file_name)}</code>"
    if category:
        meta += f" · #{escape(category.replace(' ', '_'))}"
    if caption:
        return f"{escape(caption)}\n\n{meta}"
    return meta


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
    """The notification (HTML) with one plain-text status line appended, escaped."""
    return f"{body_of(html)}\n\n{escape(line, quote=False)}"
