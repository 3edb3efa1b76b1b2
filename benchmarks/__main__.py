"""Run every benchmark against a throwaway embedded PostgreSQL and print the figures."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource

from benchmarks import chaos, library, media, presses, stats, tick
from benchmarks.common import cluster
from bot.config import LogFormat
from bot.logging import configure_logging


async def main(only: set[str]) -> None:
    if only == {"media"}:
        # No database involved: no cluster to start.
        await media.run()
        return
    async with cluster() as pg:
        print(f"machine: {os.cpu_count()} cores; PostgreSQL 18 (embedded, unix socket)\n")
        if not only or "library" in only:
            await library.selection(pg)
            print()
            await library.reindex(pg)
            await asyncio.to_thread(library.hash_large_file)
            print()
        if not only or "presses" in only:
            await presses.run_all(pg)
            print()
        if not only or "tick" in only:
            await tick.run(pg)
            print()
        if not only or "stats" in only:
            await stats.run(pg)
            print()
        if not only or "chaos" in only:
            await chaos.run(pg)
        if not only or "media" in only:
            print()
            await media.run()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak resident memory of the benchmark process: {peak:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "only",
        nargs="*",
        choices=["library", "presses", "tick", "stats", "chaos", "media", []],
        help="run only these parts",
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="the event loop to measure"
    )
    arguments = parser.parse_args()
    configure_logging("ERROR", LogFormat.CONSOLE)
    logging.getLogger().setLevel(logging.CRITICAL)
    if arguments.loop == "uvloop":
        import uvloop  # measured only; see README "uvloop and orjson"

        print("event loop: uvloop")
        uvloop.run(main(set(arguments.only)))
    else:
        asyncio.run(main(set(arguments.only)))
