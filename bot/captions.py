"""Caption texts (HTML parse mode); every name and file name is escaped."""

from __future__ import annotations

from html import escape

STATUS_VERBS = {
    "posted": ("✅", "Posted"),
    "skipped": ("⏭️", "Skipped"),
    "rejected": ("🚫", "Rejected"),
}
# The notification's last paragraph starts with this; anything after it is a status.
META_PREFIX = "📄"
PRESS_FAILED = "❌ Couldn't record that — please press again"
REJECT_PROMPT = "🚫 Reject this item for good? It will never be sent again."


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
    return f"{emoji} {verb}{where} by {escape(name)}"


def already_line(status: str, name: str | None) -> str:
    emoji, verb = STATUS_VERBS.get(status, ("ℹ️", status))
    return f"{emoji} Already {verb.lower()} by {escape(name or 'someone')}"


def body_of(html: str) -> str:
    """The notification without any status paragraph appended after it."""
    paragraphs = html.split("\n\n")
    while len(paragraphs) > 1 and not paragraphs[-1].startswith(META_PREFIX):
        paragraphs.pop()
    return "\n\n".join(paragraphs)


def with_status(html: str, line: str) -> str:
    return f"{body_of(html)}\n\n{line}"
