"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests of `python -m bot run`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 42


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    uploaded: bool = False
    result: Any = None


@dataclass
class Fault:
    status: int
    body: dict[str, Any]


@dataclass
class FakeBotApi:
    token: str
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[Fault | None]] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)
    # Per chat: sends to these chats hang until removed, or are refused with 403.
    hanging_chats: set[int] = field(default_factory=set)
    forbidden_chats: set[int] = field(default_factory=set)
    port: int = 0

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._new_update = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.confirmed_offset = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.hanging.clear()
        self.hanging_chats.clear()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls ------------------------------------------------------------

    def fail(self, method: str, status: int, description: str, **parameters: Any) -> None:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        self.faults.setdefault(method, []).append(Fault(status, body))

    def push_update(self, **update: Any) -> int:
        update_id = next(self._update_ids)
        self.updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method == method
            and (chat_id is None or str(call.params.get("chat_id")) == str(chat_id))
        ]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while len(self.of(method)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{method} x{count} not seen; saw {[c.method for c in self.calls]}"
                )
            await asyncio.sleep(0.05)
        return self.of(method)

    # -- the API ------------------------------------------------------------------

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        params: dict[str, Any] = dict(request.query)
        uploaded = False
        if request.content_type.startswith("multipart/") or request.content_type.endswith(
            "x-www-form-urlencoded"
        ):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    uploaded = True
                    params[key] = f"<upload {value.filename}>"
                else:
                    params[key] = value
        elif request.can_read_body:
            params.update(await request.json())
        for key in ("reply_markup", "allowed_updates", "commands"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params, uploaded

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, uploaded = await self._params(request)
        call = Call(method, params, uploaded)
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        queued = self.faults.get(method)
        if queued:
            fault = queued.pop(0)
            if fault is not None:
                return web.json_response(fault.body, status=fault.status)
        chat = params.get("chat_id")
        if method.startswith("send") and chat is not None:
            if int(chat) in self.forbidden_chats:
                body = {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was kicked from the supergroup chat",
                }
                return web.json_response(body, status=403)
            while int(chat) in self.hanging_chats:
                await asyncio.sleep(0.05)
        if method in self.hanging:
            while method in self.hanging:
                await asyncio.sleep(0.05)
            return web.json_response(
                {"ok": False, "error_code": 500, "description": "gone"}, status=500
            )
        result = await self._result(method, params)
        call.result = result
        return web.json_response({"ok": True, "result": result})

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "supergroup", "title": "team"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "storyqueue"},
            **content,
        }
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "storyqueue",
                "username": "storyqueue_bot",
            }
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            self.confirmed_offset = max(self.confirmed_offset, offset)
            timeout = min(float(params.get("timeout") or 0), 1.0)
            deadline = time.monotonic() + timeout
            while True:
                pending = [u for u in self.updates if u["update_id"] >= offset]
                remaining = deadline - time.monotonic()
                if pending or remaining <= 0:
                    return pending
                self._new_update.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait(), remaining)
        if method in {"sendPhoto", "sendVideo", "sendAnimation"}:
            kind = {"sendPhoto": "photo", "sendVideo": "video", "sendAnimation": "animation"}[
                method
            ]
            source = params.get(kind, "")
            file_id = (
                source
                if not str(source).startswith("<upload")
                else f"file-{next(self._message_ids)}"
            )
            media: Any = {"file_id": file_id, "file_unique_id": file_id, "width": 1, "height": 1}
            if kind != "photo":
                media["duration"] = 1
            return self._message(
                params,
                **{kind: [media] if kind == "photo" else media},
                caption=params.get("caption"),
            )
        if method == "sendMessage":
            return self._message(params, text=params.get("text"))
        if method == "getChatAdministrators":
            return []
        return True
