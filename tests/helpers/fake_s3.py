"""A real S3 endpoint for the tests (moto's server mode on 127.0.0.1), and a proxy that loses answers.

`S3Endpoint.env` is what an operator would set: AWS_ENDPOINT_URL, keys and region,
read by boto3 in this process (monkeypatched) or in `python -m bot run`.
`AnswerCuttingProxy` sits in front of it: the next PutObject reaches the store,
which stores it, and its answer never reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "story-media"
PREFIX = "queue/"
STORE_URL = f"s3://{BUCKET}/{PREFIX.rstrip('/')}"


class S3Endpoint:
    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "test-key-id",
            "AWS_SECRET_ACCESS_KEY": "test-secret-key",
            "AWS_REGION": "us-east-1",
        }

    def client(self, url: str | None = None) -> S3Client:
        env = self.env
        return boto3.session.Session().client(
            "s3",
            endpoint_url=url or self.url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )

    def stored_keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=BUCKET)
        return sorted(entry["Key"] for entry in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server: str) -> Iterator[S3Endpoint]:
    """An empty bucket on the shared moto server, removed afterwards."""
    endpoint = S3Endpoint(moto_server)
    client = endpoint.client()
    client.create_bucket(Bucket=BUCKET)
    yield endpoint
    for key in endpoint.stored_keys():
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


class AnswerCuttingProxy:
    """TCP proxy; `cut_next_put()` drops the final answer to the next PUT, then closes.

    It runs its own event loop in a thread: Meta's download in the fake Graph blocks
    the test's loop while it fetches through this proxy.
    """

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        self._server: asyncio.Server | None = None
        self._cut_pending = 0
        self.cuts = 0
        self.puts = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_next_put(self, times: int = 1) -> None:
        self._cut_pending = times

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)

            async def listen() -> None:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            self._loop.run_until_complete(listen())
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        cut = asyncio.Event()  # set when this connection's next final answer must be lost

        async def client_to_server() -> None:
            while data := await client_r.read(65536):
                if data.startswith(b"PUT "):
                    self.puts += 1
                    if self._cut_pending:
                        self._cut_pending -= 1
                        cut.set()
                server_w.write(data)
                await server_w.drain()

        async def server_to_client() -> None:
            while data := await server_r.read(65536):
                # "100 Continue" lets the body go; only the final answer is lost.
                if cut.is_set() and not data.startswith(b"HTTP/1.1 100"):
                    self.cuts += 1
                    return
                client_w.write(data)
                await client_w.drain()

        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(client_to_server()),
            asyncio.create_task(server_to_client()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, server_w):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
def cutting_proxy(s3: S3Endpoint) -> Iterator[AnswerCuttingProxy]:
    proxy = AnswerCuttingProxy(s3.url)
    proxy.start()
    yield proxy
    proxy.stop()
