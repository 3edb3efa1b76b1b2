"""The doctor's Instagram checks: each account's token and insights permission, through the
bot's own Graph client, and one file under MEDIA_PUBLIC_BASE_URL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from bot.config import ConfigError, Settings
from bot.doctor import timeouts
from bot.doctor.database import DatabaseFacts
from bot.doctor.media import check_media_url, first_media_file
from bot.doctor.report import (
    Finding,
    Mark,
    Report,
    failed,
    passed,
    warned,
)
from bot.services.accounts.config import load_account_configs
from bot.services.instagram import (
    INSIGHTS_PERMISSIONS,
    InstagramClient,
    InstagramError,
    InstagramFailure,
)
from bot.services.media_host.check import HostCheck, check_media_store, check_prepared_folder

RENEW = "renew INSTAGRAM_ACCESS_TOKEN (long-lived tokens last 60 days) and restart the bot"


@dataclass(frozen=True)
class AccountToCheck:
    """One account the bot publishes to, with the token it uses; `label` names it in the lines."""

    label: str
    user_id: str
    access_token: str = field(repr=False)
    graph_url: str = ""

    def client(self, http: httpx.AsyncClient) -> InstagramClient:
        return InstagramClient(
            http, graph_url=self.graph_url, user_id=self.user_id, access_token=self.access_token
        )


def accounts_to_check(
    settings: Settings, stored_tokens: dict[int, tuple[str, str]] | None = None
) -> list[AccountToCheck]:
    """Every configured account (INSTAGRAM_* or INSTAGRAM_ACCOUNTS_FILE), with the token in use.

    The bot keeps a refreshed token in the database and keeps using it while the
    configured token is unchanged (same sha256), so that stored token is checked:
    the configured one may be long expired while Auto Post works.
    """
    stored = stored_tokens or {}
    single = settings.instagram_accounts_file is None
    accounts = []
    for config in load_account_configs(settings):
        token = config.token
        kept = stored.get(config.chat_id)
        if kept is not None and kept[1] == config.fingerprint:
            token = kept[0]
        label = "instagram" if single else f"instagram chat {config.chat_id}"
        accounts.append(AccountToCheck(label, config.ig_user_id, token, config.graph_url))
    return accounts


def _partial_instagram(settings: Settings) -> list[str]:
    named = {
        "INSTAGRAM_USER_ID": settings.instagram_user_id,
        "INSTAGRAM_ACCESS_TOKEN": settings.instagram_access_token,
        "MEDIA_PUBLIC_BASE_URL": settings.media_public_location,
    }
    return [name for name, value in named.items() if not value]


async def check_instagram(settings: Settings, report: Report, facts: DatabaseFacts) -> None:
    try:
        accounts = accounts_to_check(settings, facts.stored_tokens)
    except ConfigError as error:
        report.add(failed("instagram", str(error), "correct the Instagram settings"))
        return
    if not accounts:
        missing = _partial_instagram(settings)
        if len(missing) == 3:
            report.add(passed("instagram", "not configured; 🤖 Auto Post is off"))
        else:
            report.add(
                warned(
                    "instagram",
                    f"partly configured; {', '.join(missing)} missing, so Auto Post is off",
                    f"set {', '.join(missing)}, or unset the others",
                )
            )
        return
    timeout = httpx.Timeout(timeouts.network())
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as http:
        # Story results are read without Auto Post: the token and its insights
        # permission matter even without a public media URL.
        for account in accounts:
            client = account.client(http)
            finding = report.add(await check_instagram_account(client, account.label))
            if finding.mark is Mark.PASS:
                report.add(await check_insights_permission(client, account.label))
        if settings.media_public_store:
            report.add(
                _host_finding(
                    "media store",
                    await check_media_store(settings, http, timeout_seconds=timeouts.network()),
                )
            )
            return
        if not settings.media_public_base_url:
            report.add(
                warned(
                    "media url",
                    "MEDIA_PUBLIC_STORE or MEDIA_PUBLIC_BASE_URL missing, so Auto Post is off",
                    "set MEDIA_PUBLIC_STORE or MEDIA_PUBLIC_BASE_URL for Auto Post"
                    " (Story results work without it)",
                )
            )
            return
        if settings.media_preparation:
            # Without preparation Instagram gets the originals: an old prepared file proves nothing.
            prepared = await check_prepared_folder(
                settings, http, timeout_seconds=timeouts.network()
            )
            if prepared is not None:
                report.add(_host_finding("media url", prepared))
                return
        path = facts.sample or first_media_file(settings.media_dir)
        if path is None:
            report.add(
                warned("media url", "no media to try under MEDIA_PUBLIC_BASE_URL", "index media")
            )
        else:
            url = f"{settings.media_public_base_url.rstrip('/')}/{quote(path)}"
            report.add(await check_media_url(http, url))


def _host_finding(subject: str, outcome: HostCheck) -> Finding:
    if outcome.ok:
        return passed(subject, outcome.detail)
    return failed(subject, outcome.detail, outcome.fix)


async def check_instagram_account(client: InstagramClient, label: str) -> Finding:
    """The token works for the account (GET /{user id}); an expired one says so."""
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            name = await client.username()
    except TimeoutError:
        return _unanswered(label, "TimeoutError")
    except InstagramError as error:
        if error.failure in (InstagramFailure.UNREACHABLE, InstagramFailure.NO_ANSWER):
            return _unanswered(label, error.detail)
        if error.failure is InstagramFailure.TOKEN_EXPIRED:
            return failed(label, f"the access token is expired or invalid ({error.detail})", RENEW)
        return failed(
            label,
            f"the Graph API refused ({_said(error)})",
            "check INSTAGRAM_USER_ID (the Instagram business account id) and the token's"
            " permissions (instagram_basic, instagram_content_publish)",
        )
    return passed(label, f"token valid for @{name}")


async def check_insights_permission(client: InstagramClient, label: str) -> Finding:
    """Story results need the insights permission; the account's own insights ask for the same."""
    subject = f"{label} insights"
    fix = (
        f"give the token {INSIGHTS_PERMISSIONS} (Instagram Login or Facebook Login)"
        " and restart the bot; Auto Post works without it"
    )
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            await client.require_insights_permission()
    except TimeoutError:
        return warned(subject, "could not be checked (TimeoutError)", fix)
    except InstagramError as error:
        if error.failure is InstagramFailure.NO_PERMISSION:
            return warned(
                subject, f"permission missing, so Story results are off ({error.detail})", fix
            )
        return warned(subject, f"could not be checked ({_said(error)})", fix)
    return passed(subject, "permission granted: Story results are kept")


def _unanswered(label: str, what: str) -> Finding:
    return failed(
        label,
        f"the Graph API did not answer ({what})",
        "check the network (and INSTAGRAM_GRAPH_URL), then run check again",
    )


def _said(error: InstagramError) -> str:
    """What Instagram answered: its message (or the HTTP status) and its error codes."""
    reference = f"error {'/'.join(str(code) for code in error.codes)}" if error.codes else ""
    return ", ".join(part for part in (error.detail, reference) if part) or "no message"
