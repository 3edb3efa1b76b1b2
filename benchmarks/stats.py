"""/stats, /status' runway and /export over a year of a busy chat's history (10 posts a day)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from benchmarks.common import Cluster, mean, ms, percentile, timer
from bot.presentation.texts import stats_text, status_text
from bot.services.chart import activity_chart, heat_map_of
from bot.services.team import TeamService

CHAT = -100888
ITEMS = 5_000
PEOPLE = 12
DAYS = 365
POSTS_PER_DAY = 10
RUNS = 20

PEOPLE_SQL = """
INSERT INTO users (telegram_user_id, first_name, username)
SELECT 5000 + n, 'Member ' || n, 'member' || n FROM generate_series(1, :people) AS n
"""
ITEMS_SQL = """
INSERT INTO media_items (chat_id, file_path, file_name, file_size, file_hash, media_kind,
                         mime_type, category)
SELECT :chat, 'cat' || (n % 20) || '/item' || n || '.jpg', 'item' || n || '.jpg', 1000,
       md5(n::text) || md5((n * 7)::text), 'photo', 'image/jpeg', 'cat' || (n % 20)
FROM generate_series(1, :items) AS n
"""
# Ten posts a day for a year, plus three skips and one reject a day, each by one of the team,
# decided between 5 minutes and 5 hours after the item arrived.
HISTORY_SQL = """
WITH decisions AS (
    SELECT n,
           CASE WHEN n % 14 < 10 THEN 'posted' WHEN n % 14 < 13 THEN 'skipped' ELSE 'rejected' END
               AS status,
           now() - (n / 14.0) * interval '1 day' AS acted_at
    FROM generate_series(1, :days * 14) AS n
)
INSERT INTO posting_history (media_item_id, chat_id, status, success, posting_method,
                             acted_by_user_id, acted_by_name, acted_at, queue_created_at,
                             instagram_media_id)
SELECT m.id, :chat, d.status, true,
       CASE WHEN d.n % 2 = 0 THEN 'instagram_api' ELSE 'telegram_manual' END,
       u.id, u.first_name, d.acted_at, d.acted_at - (5 + d.n % 295) * interval '1 minute',
       CASE WHEN d.status = 'posted' THEN 'ig-' || d.n END
FROM decisions d
JOIN media_items m ON m.file_name = 'item' || (1 + d.n % :items) || '.jpg' AND m.chat_id = :chat
JOIN users u ON u.telegram_user_id = 5000 + 1 + d.n % :people
"""
RESULTS_SQL = """
INSERT INTO story_results (chat_id, ig_media_id, posted_at, expires_at, history_id, reach, views,
                           replies, shares, navigation, profile_visits, follows,
                           total_interactions, last_read_at)
SELECT :chat, h.instagram_media_id, h.acted_at, h.acted_at + interval '1 day', h.id,
       r, 2 * r, r / 50, r / 100, r / 2, r / 20, r / 200, r / 50 + r / 100,
       h.acted_at + interval '23 hours'
FROM (SELECT *, 100 + (extract(hour FROM acted_at)::int * 37) % 900 AS r
      FROM posting_history WHERE chat_id = :chat AND status = 'posted') AS h
"""


async def run(cluster: Cluster) -> None:
    async with cluster.fresh_engine(pool_size=2) as database:
        sessions = database.sessions
        started = timer()
        async with sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO chat_settings (telegram_chat_id, posts_per_day) VALUES (:c, :ppd)"
                ),
                {"c": CHAT, "ppd": POSTS_PER_DAY},
            )
            await session.execute(text(PEOPLE_SQL), {"people": PEOPLE})
            await session.execute(text(ITEMS_SQL), {"chat": CHAT, "items": ITEMS})
            await session.execute(
                text(HISTORY_SQL),
                {"chat": CHAT, "days": DAYS, "items": ITEMS, "people": PEOPLE},
            )
            await session.execute(text(RESULTS_SQL), {"chat": CHAT})
            await session.execute(
                text(
                    "INSERT INTO media_locks (media_item_id, reason, locked_until)"
                    " SELECT DISTINCT ON (media_item_id) media_item_id, 'recent_post',"
                    " acted_at + interval '30 days' FROM posting_history"
                    " WHERE status = 'posted' AND acted_at > now() - interval '30 days'"
                )
            )
            counts = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM posting_history),"
                        " (SELECT count(*) FROM story_results)"
                    )
                )
            ).one()
        seeded = timer() - started
        await database.analyze()
        print(
            f"/stats over a year of a busy chat ({POSTS_PER_DAY} posts a day): "
            f"{counts[0]:,} history rows, {counts[1]:,} Story results, {ITEMS:,} items, "
            f"{PEOPLE} people (seeded in {seeded:.1f} s)"
        )
        team = TeamService(sessions)
        now = datetime.now(UTC)
        for days, label in ((30, "/stats"), (365, "/stats 365")):
            durations = []
            for _ in range(RUNS):
                started = timer()
                view = await team.stats(CHAT, now, days)
                reply = stats_text(view)
                durations.append(timer() - started)
            print(
                f"  {label:<12} read + text: mean {ms(mean(durations))}, "
                f"p95 {ms(percentile(durations, 0.95))} ({RUNS} runs; reply {len(reply):,} chars)"
            )
        heat = heat_map_of(view.reach_by_hour, view.posts_by_hour, 365)
        for moment in ("first, importing matplotlib", "again"):
            started = timer()
            png = await activity_chart(sessions, CHAT, now, heat)
            assert png is not None
            print(
                f"  the picture ({moment}; read + render in a thread): "
                f"{ms(timer() - started)}, {len(png):,} B"
            )
        durations = []
        for _ in range(RUNS):
            started = timer()
            status = await team.status(CHAT, now)
            line = status_text(status, now, [])
            durations.append(timer() - started)
        runway = next(part for part in line.splitlines() if "Runway" in part)
        print(
            f"  /status with the runway: mean {ms(mean(durations))}, "
            f"p95 {ms(percentile(durations, 0.95))} ({runway})"
        )
        started = timer()
        columns, rows = await team.export(CHAT)
        print(f"  /export rows read: {ms(timer() - started)} ({len(rows):,} rows × {len(columns)})")


if __name__ == "__main__":  # pragma: no cover
    from benchmarks.common import cluster

    async def main() -> None:
        async with cluster() as pg:
            await run(pg)

    asyncio.run(main())
