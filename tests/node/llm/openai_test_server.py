"""A scriptable OpenAI-compatible chat-completions server on loopback, for backend tests.

It speaks the wire format the ``openai`` client expects — ``POST /v1/chat/completions`` as a
JSON body or as server-sent events (``data: {...}`` chunks, then ``data: [DONE]``), and
``GET /v1/models`` — so the real client, with its real transport, is what gets tested.

Each chat request consumes the next behaviour of a script the test sets (``script``); once the
script is spent, ``always`` answers. Behaviours: ``ok``, ``rate_limited``, ``server_error``,
``client_error``, ``hang``, ``stream_cut``, ``slow_stream``, ``bad_json``, and two hostile ones:
``raw`` (any bytes as the body, streamed or not: SSE garbage, invalid UTF-8, huge or deeply
nested JSON) and ``endless`` (a body that never finishes). Independently,
``unsupported_params`` makes the server refuse, with a 400 naming it, any request carrying one
of those parameters (as servers without ``response_format`` or ``stream_options`` do); such a
refusal does not consume the script.

Every chat request is recorded (``requests``) with its JSON body and headers, and the server
tracks how many were in progress at once (``max_in_flight``). Token usage counts words: the
prompt's words over all messages, and the answer's words.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

__all__ = [
    "Behaviour",
    "OpenAITestServer",
    "RecordedRequest",
    "bad_json",
    "client_error",
    "endless",
    "hang",
    "ok",
    "rate_limited",
    "raw",
    "server_error",
    "slow_stream",
    "sse_chunks",
    "stream_cut",
]


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """How the server answers one chat request."""

    # ok | rate_limited | status | hang | stream_cut | slow_stream | bad_json | raw | endless
    kind: str
    text: str = ""  # the answer (ok, stream_cut, slow_stream); endless: the delta repeated
    delay_s: float = 0.0  # wait before answering at all
    with_usage: bool = True  # report token usage (body, or the include_usage chunk)
    status: int = 200  # for "status"
    retry_after: str | None = None  # Retry-After header of a 429
    retry_after_ms: str | None = None  # retry-after-ms header of a 429
    after_deltas: int = 0  # stream_cut / slow_stream: deltas sent before the cut or the gap
    gap_s: float = 0.0  # slow_stream: the silence before the remaining deltas; endless: between pieces
    graceful: bool = False  # stream_cut: end the body properly instead of dropping the socket
    one_line: bool = False  # endless: one SSE line that never ends instead of endless chunks
    body: bytes = b""  # raw: the whole body, sent as is
    content_type: str = "application/json"  # raw: the Content-Type header
    write_bytes: int = 65_536  # raw: the body goes out in writes of this size


def ok(
    text: str = "hello from the test server", *, delay_s: float = 0.0, with_usage: bool = True
) -> Behaviour:
    return Behaviour(kind="ok", text=text, delay_s=delay_s, with_usage=with_usage)


def rate_limited(*, retry_after: str | None = None, retry_after_ms: str | None = None) -> Behaviour:
    return Behaviour(kind="rate_limited", retry_after=retry_after, retry_after_ms=retry_after_ms)


def server_error(status: int = 500) -> Behaviour:
    return Behaviour(kind="status", status=status)


def client_error(status: int) -> Behaviour:
    return Behaviour(kind="status", status=status)


def hang() -> Behaviour:
    """Never answer: hold the request until the client gives up or the server stops."""
    return Behaviour(kind="hang")


def stream_cut(text: str, *, after_deltas: int, graceful: bool = False) -> Behaviour:
    """Stream ``after_deltas`` deltas of ``text``, then drop the connection mid-body.

    ``graceful``: end the HTTP body properly instead, still without the final chunk or
    ``[DONE]`` (what a proxy that times out an upstream may do).
    """
    return Behaviour(kind="stream_cut", text=text, after_deltas=after_deltas, graceful=graceful)


def slow_stream(text: str, *, after_deltas: int, gap_s: float) -> Behaviour:
    """Stream ``after_deltas`` deltas, fall silent for ``gap_s``, then finish normally."""
    return Behaviour(kind="slow_stream", text=text, after_deltas=after_deltas, gap_s=gap_s)


def bad_json(body: str = '{"id": "chatcmpl-broken", "choices": [') -> Behaviour:
    """A 200 ``application/json`` whose body is not a chat completion (by default, not JSON)."""
    return Behaviour(kind="bad_json", text=body)


def raw(body: bytes, *, content_type: str = "application/json", status: int = 200,
        write_bytes: int = 65_536) -> Behaviour:  # fmt: skip
    """Send ``body`` byte for byte with this status and Content-Type, whatever was asked.

    With ``content_type="text/event-stream"`` it is read as a stream (build it with
    ``sse_chunks``, or write any framing garbage by hand).
    """
    return Behaviour(kind="raw", body=body, content_type=content_type, status=status, write_bytes=write_bytes)


def endless(delta: str = "Paris\n", *, gap_s: float = 0.0, one_line: bool = False) -> Behaviour:
    """A body that never finishes: until the client hangs up or the server stops.

    A streamed request gets ``delta`` as a chunk every ``gap_s`` (0 = as fast as the client
    reads), never a final chunk; with ``one_line``, one SSE ``data:`` line that never ends
    instead (``delta`` repeated). A whole-answer request gets a JSON body that never ends
    (JSON whitespace every ``gap_s``).
    """
    return Behaviour(kind="endless", text=delta, gap_s=gap_s, one_line=one_line)


def sse_chunks(deltas: list[str], *, finish_reason: str | None = "stop", done: bool = True,
               model: str = "test-model") -> bytes:  # fmt: skip
    """A well-framed event stream carrying ``deltas`` as chat completion chunks."""
    events = [_chunk_event(index, {"content": delta}, None, model) for index, delta in enumerate(deltas)]
    if finish_reason is not None:
        events.append(_chunk_event(len(deltas), {}, finish_reason, model))
    if done:
        events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _chunk_event(index: int, delta: dict[str, Any], finish_reason: str | None, model: str) -> bytes:
    chunk = {
        "id": f"chatcmpl-raw-{index}",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


@dataclass(frozen=True)
class RecordedRequest:
    """One chat request as the server received it."""

    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


_STATUS_MESSAGES = {
    400: ("invalid_request_error", "Bad request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("invalid_request_error", "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "The model does not exist or you do not have access to it."),
    429: ("requests", "Rate limit reached for requests."),
    500: ("server_error", "The server had an error while processing your request."),
    502: ("server_error", "Bad gateway."),
    503: ("server_error", "The engine is currently overloaded, please try again later."),
}


class OpenAITestServer:
    """The server; ``await start()`` binds 127.0.0.1 on a free port, ``aclose()`` stops it."""

    def __init__(self, *, model: str = "test-model", host: str = "127.0.0.1") -> None:
        self.model = model
        self.host = host
        self.requests: list[RecordedRequest] = []
        self.unsupported_params: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Behaviour] = deque()
        self._default = ok()
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- the test's controls ----------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order."""
        self._script.extend(behaviours)

    def always(self, behaviour: Behaviour) -> None:
        """Answer with this once the script is spent."""
        self._default = behaviour

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self._port}/v1"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        self._closing.set()  # releases hung handlers
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        address = self.base_url if self._port is not None else "not started"
        return (
            f"<OpenAITestServer {address} requests={len(self.requests)} "
            f"scripted={len(self._script)} max_in_flight={self.max_in_flight}>"
        )

    # --- handlers -----------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "tests"}],
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error_response(
                400, "The request body is not valid JSON.", "invalid_request_error"
            )
        self.requests.append(RecordedRequest(body=body, headers=dict(request.headers)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for param in sorted(self.unsupported_params):
                if param in body:
                    return _error_response(
                        400,
                        f"Unrecognized request argument supplied: {param}",
                        "invalid_request_error",
                        param=param,
                    )
            behaviour = self._script.popleft() if self._script else self._default
            if behaviour.delay_s:
                await asyncio.sleep(behaviour.delay_s)
            return await self._answer(request, body, behaviour)
        finally:
            self.in_flight -= 1

    async def _answer(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        streaming = bool(body.get("stream"))
        match behaviour.kind:
            case "ok":
                if streaming:
                    return await self._stream(request, body, behaviour)
                return web.json_response(self._completion_body(body, behaviour))
            case "rate_limited":
                headers = {}
                if behaviour.retry_after is not None:
                    headers["Retry-After"] = behaviour.retry_after
                if behaviour.retry_after_ms is not None:
                    headers["retry-after-ms"] = behaviour.retry_after_ms
                error_type, message = _status_text(429)
                return _error_response(429, message, error_type, headers=headers)
            case "status":
                error_type, message = _status_text(behaviour.status)
                return _error_response(behaviour.status, message, error_type)
            case "hang":
                await self._wait_until_abandoned(request)
                return web.Response(status=504)  # nobody is left to read it
            case "stream_cut" | "slow_stream":
                return await self._stream(request, body, behaviour)
            case "bad_json":
                return web.Response(
                    status=200, text=behaviour.text, content_type="application/json"
                )
            case "raw":
                return await self._raw(request, behaviour)
            case "endless":
                return await self._endless(request, streaming, behaviour)
        raise AssertionError(f"unknown behaviour {behaviour.kind!r}")

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        completion_id = f"chatcmpl-test-{next(self._ids)}"
        model = str(body.get("model", self.model))

        async def send(chunk: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }

        try:
            await send(chunk({"role": "assistant", "content": ""}))
            for number, delta in enumerate(_deltas(behaviour.text)):
                if number == behaviour.after_deltas:
                    if behaviour.kind == "stream_cut":
                        if behaviour.graceful:
                            await response.write_eof()
                        else:
                            _drop_connection(request)
                        return response
                    if behaviour.kind == "slow_stream" and not await self._pause(
                        request, behaviour.gap_s
                    ):
                        return response  # the client gave up during the silence
                await send(chunk({"content": delta}))
            await send(chunk({}, finish_reason="stop"))
            include_usage = (body.get("stream_options") or {}).get("include_usage")
            if include_usage and behaviour.with_usage:
                usage_chunk = chunk({})
                usage_chunk["choices"] = []
                usage_chunk["usage"] = _usage(body, behaviour.text)
                await send(usage_chunk)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client gave up on the stream (an idle timeout): nothing left to send
        return response

    async def _raw(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(
            status=behaviour.status, headers={"Content-Type": behaviour.content_type}
        )
        await response.prepare(request)
        body, step = behaviour.body, max(behaviour.write_bytes, 1)
        try:
            for start in range(0, len(body), step):
                await response.write(body[start : start + step])
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading (a size or time bound): nothing left to send
        return response

    async def _endless(
        self, request: web.Request, streaming: bool, behaviour: Behaviour
    ) -> web.StreamResponse:
        content_type = "text/event-stream" if streaming else "application/json"
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        await response.prepare(request)
        opening = b""
        if streaming and behaviour.one_line:
            opening = b"data: "
            piece = behaviour.text.replace("\n", " ").encode() * (65_536 // max(len(behaviour.text), 1))
        elif streaming:
            piece = _chunk_event(0, {"content": behaviour.text}, None, self.model)
        else:
            piece = b" " * 1024  # JSON allows any amount of whitespace before the value
        try:
            await response.write(opening)
            while await self._pause(request, behaviour.gap_s):
                await response.write(piece)
                await asyncio.sleep(0)  # a write to a fast reader may not yield: let others run
        except ConnectionError:
            pass  # the client gave up, as it must
        return response

    def _completion_body(self, body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": f"chatcmpl-test-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", self.model)),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": behaviour.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        }
        if behaviour.with_usage:
            answer["usage"] = _usage(body, behaviour.text)
        return answer

    async def _wait_until_abandoned(self, request: web.Request) -> None:
        await self._pause(request, float("inf"))

    async def _pause(self, request: web.Request, seconds: float) -> bool:
        """Wait ``seconds``; False as soon as the client hangs up or the server stops."""
        # aiohttp does not cancel a handler when its client goes away, so watch the socket.
        deadline = time.monotonic() + seconds
        while True:
            transport = request.transport
            if self._closing.is_set() or transport is None or transport.is_closing():
                return False
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(min(0.01, max(deadline - time.monotonic(), 0.0)))


def _deltas(text: str) -> list[str]:
    """The answer in word-sized deltas that concatenate back to ``text``."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or ([text] if text else [])


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt_tokens = sum(
        len(str(message.get("content", "")).split()) for message in body.get("messages", [])
    )
    completion_tokens = len(text.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _status_text(status: int) -> tuple[str, str]:
    return _STATUS_MESSAGES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
    )


def _error_response(
    status: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": None}}
    return web.json_response(body, status=status, headers=headers)


def _drop_connection(request: web.Request) -> None:
    """Close the socket mid-body: no final chunk, no [DONE], no chunked terminator."""
    transport = request.transport
    if transport is not None:
        transport.abort()
