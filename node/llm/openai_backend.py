"""The LLM backend for any OpenAI-compatible endpoint, through the ``openai`` client.

It owns the whole call policy instead of leaving it to the client (whose defaults are two
silent retries and a 600 s read timeout): the client is built with ``max_retries=0``, every
attempt is bounded by explicit timeouts (a stream by an idle and a total one) and every
response body by a byte count (``node.llm.openai_transport``), failures are retried with
capped exponential backoff and full jitter (``node.llm.retry``), a 429's Retry-After is
honoured, calls in flight are bounded by a semaphore, and every vendor exception (and a
body too big or too deeply nested to read) is translated at this boundary into the
``node.errors.LLMError`` tree (``node.llm.openai_errors``). Its configuration lives in
``node.llm.openai_config``, its streamed answers in ``node.llm.openai_stream``; the names
callers use are re-exported here.

Two optional request parameters are dropped, once and for the life of the backend, when an
endpoint answers 400 naming them: ``response_format`` (json_mode) and ``stream_options``
(token usage at the end of a stream). Many OpenAI-compatible servers support neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Final, Self, TypeVar

import openai
from openai import AsyncOpenAI, AsyncStream, omit
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageParam,
)

from node.errors import (
    LLMBadResponse,
    LLMConnectionError,
    LLMError,
    LLMRequestError,
    LLMTimeout,
)
from node.llm.base import ChatMessage, Completion, Usage
from node.llm.openai_config import OPENAI_DEFAULT_BASE_URL, OpenAIConfig, resolve_api_key
from node.llm.openai_errors import error_detail, rejected_option, translate_error
from node.llm.openai_stream import OpenAICompletionStream, StreamProgress
from node.llm.openai_transport import ResponseTooLarge, bounded_http_client
from node.llm.retry import retry_delay_s

__all__ = [
    "OPENAI_DEFAULT_BASE_URL",
    "OpenAIBackend",
    "OpenAICompletionStream",
    "OpenAIConfig",
    "resolve_api_key",
]

logger = logging.getLogger(__name__)

# The client refuses to start without some key; local servers ignore the header anyway.
_PLACEHOLDER_API_KEY: Final = "no-key-required"
# The usual rough figure for English text; only used when the endpoint reports no usage.
_CHARS_PER_TOKEN: Final = 4

_RESPONSE_FORMAT: Final = "response_format"
_STREAM_OPTIONS: Final = "stream_options"

_T = TypeVar("_T")


class OpenAIBackend:
    """``LLMBackend`` over an OpenAI-compatible chat-completions endpoint.

    Runs on the event loop. At most ``config.concurrency`` calls hold a slot at once; a call
    keeps its slot through its retries (so a rate-limited endpoint slows callers down rather
    than being hit by fresh calls), and its ``latency_s`` counts from getting the slot.
    """

    def __init__(
        self,
        config: OpenAIConfig,
        *,
        rng: random.Random | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._policy = config.retry_policy
        self._rng = rng if rng is not None else random.Random()
        api_key = resolve_api_key(config.api_key, base_url=config.base_url, env=env)
        self._client = AsyncOpenAI(
            api_key=api_key or _PLACEHOLDER_API_KEY,
            base_url=config.base_url or OPENAI_DEFAULT_BASE_URL,
            timeout=openai.Timeout(
                # httpx2's read timeout is per read, so a stream's headers and each later read
                # get this long; the totals are enforced with asyncio.timeout below.
                max(config.request_timeout_s, config.stream_idle_timeout_s),
                connect=config.connect_timeout_s,
            ),
            max_retries=0,  # the retry policy is ours (see node.llm.retry)
            http_client=bounded_http_client(max_bytes=config.max_response_bytes),
        )
        self._slots = asyncio.Semaphore(config.concurrency)
        self._in_flight = 0
        self._unsupported_options: set[str] = set()
        self._usage_estimate_logged = False
        self._closed = False

    @property
    def name(self) -> str:
        return f"openai:{self._config.model}"

    @property
    def config(self) -> OpenAIConfig:
        return self._config

    @property
    def in_flight(self) -> int:
        """Calls holding a concurrency slot right now."""
        return self._in_flight

    def __repr__(self) -> str:
        base_url = self._config.base_url or OPENAI_DEFAULT_BASE_URL
        state = " closed" if self._closed else ""
        return (
            f"<OpenAIBackend model={self._config.model} base_url={base_url} "
            f"in_flight={self._in_flight}/{self._config.concurrency}{state}>"
        )

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> Completion:
        """The whole answer. Raises ``LLMError`` once the retry policy is spent."""
        async with self._slot():
            started = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                try:
                    response = await self._request_completion(
                        messages, max_tokens=max_tokens, json_mode=json_mode
                    )
                    return self._completion_from(
                        response, messages, latency_s=time.monotonic() - started, attempts=attempt
                    )
                except LLMError as error:
                    delay_s = self._retry_delay_s(error, attempt)
                    if delay_s is None:
                        raise
                    await asyncio.sleep(delay_s)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> OpenAICompletionStream:
        """The answer as it is generated; nothing is sent until iteration starts."""
        return OpenAICompletionStream(
            lambda finished: self._stream_deltas(
                messages, max_tokens=max_tokens, json_mode=json_mode, finished=finished
            )
        )

    async def aclose(self) -> None:
        """Close the client's connections; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- one call: slots, retries ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._closed:
            raise LLMRequestError(f"{self.name}: the backend is closed")
        async with self._slots:
            self._in_flight += 1
            try:
                yield
            finally:
                self._in_flight -= 1

    def _retry_delay_s(self, error: LLMError, attempt: int) -> float | None:
        delay_s = retry_delay_s(error, attempt, self._policy, self._rng)
        if delay_s is not None:
            logger.warning(
                "%s: attempt %d/%d failed (%s: %s); retrying in %.2f s",
                self.name,
                attempt,
                self._policy.max_attempts,
                type(error).__name__,
                error,
                delay_s,
            )
        return delay_s

    async def _stream_deltas(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None,
        json_mode: bool,
        finished: Callable[[Completion], None],
    ) -> AsyncGenerator[str, None]:
        """Text deltas; the finished ``Completion`` goes to ``finished`` at the end.

        Retries only while nothing has been yielded: once the caller holds part of an
        answer, a new attempt would hand it a second, different beginning.
        """
        async with self._slot():
            started = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                progress = StreamProgress()
                try:
                    # aclosing: if the caller stops early, the attempt's response closes now,
                    # not whenever the garbage collector finalizes the inner generator.
                    async with contextlib.aclosing(
                        self._stream_once(
                            messages, max_tokens=max_tokens, json_mode=json_mode, progress=progress
                        )
                    ) as deltas:
                        async for delta in deltas:
                            yield delta
                except LLMError as error:
                    if progress.parts:
                        logger.warning(
                            "%s: stream failed after %d deltas (%s: %s); not retried, the "
                            "caller already consumed part of the answer",
                            self.name,
                            len(progress.parts),
                            type(error).__name__,
                            error,
                        )
                        raise
                    delay_s = self._retry_delay_s(error, attempt)
                    if delay_s is None:
                        raise
                    await asyncio.sleep(delay_s)
                    continue
                text = "".join(progress.parts)
                finished(
                    Completion(
                        text=text,
                        usage=self._usage_from(progress.usage, messages, text),
                        latency_s=time.monotonic() - started,
                        model=progress.model or self._config.model,
                        finish_reason=progress.finish_reason,
                        attempts=attempt,
                    )
                )
                return

    # --- one attempt: request, timeouts, translation ----------------------------------------

    async def _request_completion(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None, json_mode: bool
    ) -> ChatCompletion:
        async def send(options: frozenset[str]) -> ChatCompletion:
            return await self._client.chat.completions.create(
                model=self._config.model,
                messages=[_message_param(message) for message in messages],
                max_tokens=omit if max_tokens is None else max_tokens,
                response_format={"type": "json_object"} if _RESPONSE_FORMAT in options else omit,
            )

        wanted = {_RESPONSE_FORMAT} if json_mode and self._config.send_response_format else set()
        return await self._send(send, frozenset(wanted))

    async def _stream_once(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None,
        json_mode: bool,
        progress: StreamProgress,
    ) -> AsyncGenerator[str, None]:
        async def send(options: frozenset[str]) -> AsyncStream[ChatCompletionChunk]:
            return await self._client.chat.completions.create(
                model=self._config.model,
                messages=[_message_param(message) for message in messages],
                max_tokens=omit if max_tokens is None else max_tokens,
                response_format={"type": "json_object"} if _RESPONSE_FORMAT in options else omit,
                stream=True,
                stream_options={"include_usage": True} if _STREAM_OPTIONS in options else omit,
            )

        wanted = {_STREAM_OPTIONS}
        if json_mode and self._config.send_response_format:
            wanted.add(_RESPONSE_FORMAT)
        # The total bound counts from the request, so an endpoint slow to answer and then
        # dripping chunks just often enough for the idle bound still ends in time.
        deadline = time.monotonic() + self._config.stream_total_timeout_s
        chunks = await self._send(send, frozenset(wanted))
        idle_timeout_s = self._config.stream_idle_timeout_s
        try:
            while True:
                left_s = deadline - time.monotonic()
                try:
                    async with asyncio.timeout(max(min(idle_timeout_s, left_s), 0.0)):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise self._stream_timeout(idle_s=idle_timeout_s, left_s=left_s) from exc
                except openai.OpenAIError as exc:
                    raise translate_error(exc) from exc
                except ValueError as exc:  # a chunk that is not JSON
                    raise LLMBadResponse(f"unreadable stream chunk: {error_detail(exc)}") from exc
                except (ResponseTooLarge, RecursionError) as exc:
                    raise _unreadable(exc) from exc
                delta = progress.absorb(chunk)
                if delta:
                    yield delta
        finally:
            await chunks.close()
        if progress.finish_reason is None:
            # The body ended cleanly but the endpoint never said it was done (an abrupt close
            # is already an APIConnectionError): for the caller both are a cut connection.
            raise LLMConnectionError("stream ended before its final chunk (no finish_reason)")

    async def _send(
        self, send: Callable[[frozenset[str]], Awaitable[_T]], wanted: frozenset[str]
    ) -> _T:
        """One attempt with the optional parameters in ``wanted`` the endpoint accepts.

        A 400 naming one of them marks it unsupported for good and re-sends at once without
        it, inside the same attempt (this can misread a 400 that only *mentions* the option,
        e.g. OpenAI's "messages must contain the word json"; the cost is a plain request).
        """
        while True:
            options = wanted - self._unsupported_options
            try:
                async with asyncio.timeout(self._config.request_timeout_s):
                    return await send(options)
            except openai.BadRequestError as exc:
                rejected = rejected_option(exc, options)
                if rejected is None:
                    raise translate_error(exc) from exc
                self._mark_unsupported(rejected, exc)
            except openai.OpenAIError as exc:
                raise translate_error(exc) from exc
            except TimeoutError as exc:
                raise LLMTimeout(
                    f"no answer within request_timeout_s={self._config.request_timeout_s} s"
                ) from exc
            except ValueError as exc:  # a 2xx whose JSON body does not parse
                raise LLMBadResponse(f"unreadable response body: {error_detail(exc)}") from exc
            except (ResponseTooLarge, RecursionError) as exc:
                raise _unreadable(exc) from exc

    def _stream_timeout(self, *, idle_s: float, left_s: float) -> LLMTimeout:
        if left_s <= idle_s:
            return LLMTimeout(
                f"stream not finished within stream_total_timeout_s="
                f"{self._config.stream_total_timeout_s} s"
            )
        return LLMTimeout(f"stream idle for stream_idle_timeout_s={idle_s} s")

    def _mark_unsupported(self, option: str, exc: openai.BadRequestError) -> None:
        if option in self._unsupported_options:
            return
        self._unsupported_options.add(option)
        logger.warning(
            "%s: the endpoint rejected %s (%s); no longer sending it",
            self.name,
            option,
            error_detail(exc),
        )

    # --- answers ----------------------------------------------------------------------------

    def _completion_from(
        self,
        response: object,
        messages: Sequence[ChatMessage],
        *,
        latency_s: float,
        attempts: int,
    ) -> Completion:
        # The client validates loosely: a 2xx body of the wrong shape still arrives, with
        # missing or raw fields, so every field is checked before use.
        if not isinstance(response, ChatCompletion):
            raise LLMBadResponse(f"expected a chat completion, got {type(response).__name__}")
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise LLMBadResponse("the response has no choices")
        text = getattr(getattr(choices[0], "message", None), "content", None)
        if not isinstance(text, str):
            raise LLMBadResponse("the first choice has no text content")
        finish_reason = getattr(choices[0], "finish_reason", None)
        model = getattr(response, "model", None)
        return Completion(
            text=text,
            usage=self._usage_from(getattr(response, "usage", None), messages, text),
            latency_s=latency_s,
            model=model if isinstance(model, str) and model else self._config.model,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            attempts=attempts,
        )

    def _usage_from(self, reported: object, messages: Sequence[ChatMessage], text: str) -> Usage:
        prompt_tokens = getattr(reported, "prompt_tokens", None)
        completion_tokens = getattr(reported, "completion_tokens", None)
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        if not self._usage_estimate_logged:
            self._usage_estimate_logged = True
            logger.debug(
                "%s: the endpoint reports no token usage; estimating ~%d chars per token",
                self.name,
                _CHARS_PER_TOKEN,
            )
        prompt_chars = sum(len(message.content) for message in messages)
        return Usage(
            prompt_tokens=_estimate_tokens(prompt_chars),
            completion_tokens=_estimate_tokens(len(text)),
        )


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}


def _unreadable(exc: ResponseTooLarge | RecursionError) -> LLMBadResponse:
    """The error for a body too big to read, or nested too deep for the JSON decoder."""
    if isinstance(exc, ResponseTooLarge):
        return LLMBadResponse(str(exc))
    return LLMBadResponse("the response is JSON nested too deeply to read")


def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / _CHARS_PER_TOKEN)
