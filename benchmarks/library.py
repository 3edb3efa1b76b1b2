"""The selection query on 100,000 items, and re-indexing 10,000 unchanged files."""

from __future__ import annotations

import re
import shutil
import tempfile
import tracemalloc
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from benchmarks.common import Cluster, mean, ms, percentile, timer
from bot.services.library import LibraryIndexer, inspect_file, walk
from db.repositories import MediaRepository
from db.repositories.media import eligible_query

CHAT = -100777
ITEMS = 100_000

SEED = """
INSERT INTO media_items (chat_id, file_path, file_name, file_size, file_hash, media_kind,
                         mime_type, category, times_posted, last_posted_at)
SELECT :chat, 'cat' || (n % 50) || '/item' || n || '.jpg', 'item' || n || '.jpg', 1000,
       md5(n::text) || md5((n * 7)::text), 'photo', 'image/jpeg', 'cat' || (n % 50),
       CASE WHEN n % 3 = 0 THEN 1 + n % 5 ELSE 0 END,
       CASE WHEN n % 3 = 0 THEN now() - (n % 400) * interval '1 day' END
FROM generate_series(1, :items) AS n
"""
LOCKS = """
INSERT INTO media_locks (media_item_id, reason, locked_until)
SELECT id, CASE WHEN row_number() OVER () % 10 = 0 THEN 'rejected' ELSE 'recent_post' END,
       CASE WHEN row_number() OVER () % 10 = 0 THEN NULL ELSE now() + interval '20 days' END
FROM (SELECT id FROM media_items ORDER BY last_posted_at DESC NULLS LAST LIMIT 20000) AS recent
"""


async def selection(cluster: Cluster) -> None:
    async with cluster.fresh_engine(pool_size=1) as database:
        sessions = database.sessions
        async with sessions() as session, session.begin():
            await session.execute(
                text("INSERT INTO chat_settings (telegram_chat_id) VALUES (:c)"), {"c": CHAT}
            )
            started = timer()
            await session.execute(text(SEED), {"chat": CHAT, "items": ITEMS})
            await session.execute(text(LOCKS))
            await session.execute(
                text(
                    "INSERT INTO posting_queue (media_item_id, chat_id, status)"
                    " SELECT id, chat_id, 'sent' FROM media_items WHERE last_posted_at IS NULL LIMIT 100"
                )
            )
            seeded = timer() - started
        await database.analyze()
        durations = []
        for _ in range(200):
            async with sessions() as session, session.begin():
                started = timer()
                await MediaRepository(session).next_eligible(CHAT)
                durations.append(timer() - started)
        compiled = (
            eligible_query(CHAT)
            .limit(1)
            .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        async with sessions() as session, session.begin():
            plan = [
                row[0]
                for row in await session.execute(
                    text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {compiled}")
                )
            ]
        print(
            f"selection query, {ITEMS:,} items (20,000 locked, 100 queued; seeded in {seeded:.1f} s)"
        )
        print(
            f"  next_eligible: mean {ms(mean(durations))}, p50 {ms(percentile(durations, 0.5))},"
            f" p99 {ms(percentile(durations, 0.99))} over {len(durations)} runs"
        )
        scans = sorted(
            {
                match.group(0)
                for line in plan
                for match in re.finditer(r"(Seq Scan on \w+|using \w+)", line)
            }
        )
        print(f"  scans: {', '.join(scans)}")
        for line in plan:
            print(f"    {line}")


async def reindex(cluster: Cluster, files: int = 10_000) -> None:
    root = Path(tempfile.mkdtemp(prefix="sqlib"))
    try:
        for index in range(files):
            folder = root / f"cat{index % 40}"
            folder.mkdir(exist_ok=True)
            (folder / f"item{index}.jpg").write_bytes(
                b"\xff\xd8\xff\xe0" + index.to_bytes(8, "big") * 64
            )
        async with cluster.fresh_engine(pool_size=2) as database:
            indexer = LibraryIndexer(database.sessions)
            started = timer()
            first = await indexer.index(root, CHAT)
            cold = timer() - started
            started = timer()
            second = await indexer.index(root, CHAT)
            warm = timer() - started
            print(f"indexing {files:,} files: first run {cold:.2f} s ({first.summary()})")
            print(f"  unchanged re-index {warm:.2f} s ({second.summary()})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def hash_large_file(size_mb: int = 500) -> None:
    """A large video is hashed in 1 MB chunks: Python's peak allocation stays small."""
    root = Path(tempfile.mkdtemp(prefix="sqbig"))
    try:
        path = root / "big.mp4"
        with open(path, "wb") as handle:
            handle.write(b"\x00\x00\x00\x18ftypmp42")
            handle.truncate(size_mb * 1024 * 1024)
        found = walk(root)[0]
        tracemalloc.start()
        started = timer()
        inspect_file(root, found, local_api=True)
        seconds = timer() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"hashing a {size_mb} MB video: {seconds:.2f} s, peak Python allocation "
            f"{peak / 1024 / 1024:.1f} MB"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
