"""The simulated LLM as an OpenAI-compatible HTTP server (what ``sim-llm`` serves).

Routes: ``POST /v1/chat/completions`` (whole or ``stream: true`` as server-sent events, with a
usage chunk when ``stream_options.include_usage`` is set) and ``GET /v1/models``. Faults come
out as a real endpoint shows them: 429 with ``Retry-After``, 500, a response that never comes,
an answer cut with ``finish_reason: "length"``, garbled text. Bad requests get a 400 with an
OpenAI-style error body and change nothing; the server keeps serving.

Randomness: a request that carries ``seed`` draws its answer from (server seed, request seed,
messages); otherwise request *n* draws from (server seed, n). Either way a seed reproduces the
answers. Faults always follow the request number, so a retried seeded request can succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from typing import Any

from aiohttp import web

from node.llm.base import ChatMessage
from node.llm.sim.backend import stream_pieces
from node.llm.sim.model import Fault, SimAnswer, SimulatedModel

__all__ = ["create_sim_app", "MAX_REQUEST_BYTES"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8 * 1024 * 1024
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_MODEL_KEY = web.AppKey("model", SimulatedModel)
_STATE_KEY = web.AppKey("state", dict)


class BadRequest(ValueError):
    """The request body is not a chat completion request we can serve."""


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        if all(isinstance(text, str) for text in texts):
            return "".join(texts)  # type: ignore[arg-type]
    raise BadRequest("message content must be a string or a list of text parts")


def parse_chat_request(body: Any) -> tuple[list[ChatMessage], dict[str, Any]]:
    """Validate a decoded JSON body; returns the messages and the options we honour."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("'messages' must be a non-empty array")
    messages: list[ChatMessage] = []
    for number, raw in enumerate(raw_messages):
        if not isinstance(raw, dict):
            raise BadRequest(f"messages[{number}] must be an object")
        role = _ROLES.get(raw.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise BadRequest(f"messages[{number}].role must be one of {sorted(_ROLES)}")
        messages.append(ChatMessage(role, _content_text(raw.get("content", ""))))  # type: ignore[arg-type]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequest("'seed' must be an integer")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise BadRequest("'stream_options' must be an object")
    options = {
        "stream": stream,
        "seed": seed,
        "include_usage": bool(stream_options.get("include_usage", False)),
        "model": str(body.get("model", "")),
    }
    return messages, options


def create_sim_app(
    model: SimulatedModel,
    *,
    seed: int = 0,
    hang_s: float = 600.0,
) -> web.Application:
    """An aiohttp app serving ``model``; ``hang_s`` bounds how long a simulated hang lasts."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[_MODEL_KEY] = model
    state: dict[str, Any] = {"requests": 0}
    app[_STATE_KEY] = state
    model_id = f"sim-{model.universe.name}"

    def draw(messages: list[ChatMessage], request_seed: int | None) -> SimAnswer:
        by_order = random.Random(f"{seed}:{state['requests']}")
        state["requests"] += 1
        if request_seed is None:
            return model.respond(messages, by_order)
        digest = hashlib.blake2b(repr([(m.role, m.content) for m in messages]).encode(), digest_size=8)
        seeded = random.Random(f"{seed}:{request_seed}:{digest.hexdigest()}")
        # Faults still follow the request order: a seeded request that drew a 429 would
        # otherwise draw it again on every retry, for ever.
        return model.respond(messages, seeded, fault_rng=by_order)

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        except LookupError as exc:  # Content-Type names a charset Python does not know
            return _error(400, f"request body has an unknown charset: {exc}")
        except RecursionError:
            return _error(400, "request body is not valid JSON: nested too deeply")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body over {MAX_REQUEST_BYTES} bytes")
        try:
            messages, options = parse_chat_request(body)
        except BadRequest as exc:
            return _error(400, str(exc))
        answer = draw(messages, options["seed"])
        if answer.fault is Fault.RATE_LIMIT:
            retry_after = model.params.retry_after_s
            response = _error(429, "simulated rate limit", "rate_limit_error")
            response.headers["Retry-After"] = f"{retry_after:g}"
            response.headers["retry-after-ms"] = str(int(retry_after * 1000))
            return response
        if answer.fault is Fault.SERVER_ERROR:
            return _error(500, "simulated internal server error", "server_error")
        if answer.fault is Fault.HANG:
            await asyncio.sleep(hang_s)
            return _error(504, "simulated hang ended")
        created = int(time.time())
        completion_id = f"chatcmpl-sim{state['requests']}"
        usage = {
            "prompt_tokens": answer.usage.prompt_tokens,
            "completion_tokens": answer.usage.completion_tokens,
            "total_tokens": answer.usage.total_tokens,
        }
        if not options["stream"]:
            await asyncio.sleep(answer.latency_s)
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_id,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer.text},
                            "finish_reason": answer.finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )
        return await _stream(request, answer, completion_id, created, model_id, usage, options["include_usage"])

    async def _stream(
        request: web.Request,
        answer: SimAnswer,
        completion_id: str,
        created: int,
        model_name: str,
        usage: dict[str, int],
        include_usage: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        params = model.params

        def chunk(delta: dict[str, str], finish_reason: str | None, **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            # ASCII escapes: a lone surrogate from the prompt (valid in JSON, "\ud800") cannot be
            # encoded to UTF-8 and would cut the stream mid-answer.
            return f"data: {json.dumps(payload)}\n\n".encode()

        await asyncio.sleep(params.first_token_s * params.time_scale)
        pieces = stream_pieces(answer.text)
        per_piece = max(0.0, answer.latency_s - params.first_token_s * params.time_scale) / len(pieces)
        await response.write(chunk({"role": "assistant", "content": ""}, None))
        for piece in pieces:
            if per_piece:
                await asyncio.sleep(per_piece)
            await response.write(chunk({"content": piece}, None))
        await response.write(chunk({}, answer.finish_reason))
        if include_usage:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                       "model": model_name, "choices": [], "usage": usage}  # fmt: skip
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "swarmlist"}]}
        )

    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    return app
