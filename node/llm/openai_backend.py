"""The LLM backend for any OpenAI-compatible endpoint, through the ``openai`` client.

It owns the whole call policy instead of leaving it to the client (whose defaults are two
silent retries and a 600 s read timeout): the client is built with ``max_retries=0``, every
attempt is bounded by explicit timeouts, failures are retried with capped exponential backoff
and full jitter (``node.llm.retry``), a 429's Retry-After is honoured, calls in flight are
bounded by a semaphore, and every vendor exception is translated at this boundary into the
``node.errors.LLMError`` tree.

Two optional request parameters are dropped, once and for the life of the backend, when an
endpoint answers 400 naming them: ``response_format`` (json_mode) and ``stream_options``
(token usage at the end of a stream). Many OpenAI-compatible servers support neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
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
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Final, Self, TypeVar
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI, AsyncStream, omit
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageParam,
)

from node.errors import (
    ConfigError,
    LLMBadResponse,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
)
from node.llm.base import ChatMessage, Completion, Usage
from node.llm.retry import RetryPolicy, parse_retry_after_s, retry_delay_s

__all__ = [
    "OPENAI_DEFAULT_BASE_URL",
    "OpenAIBackend",
    "OpenAICompletionStream",
    "OpenAIConfig",
    "resolve_api_key",
]

logger = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
# The client refuses to start without some key; local servers ignore the header anyway.
_PLACEHOLDER_API_KEY: Final = "no-key-required"
# The usual rough figure for English text; only used when the endpoint reports no usage.
_CHARS_PER_TOKEN: Final = 4
# Vendor error messages can carry whole request bodies; keep log lines and errors readable.
_MAX_DETAIL_CHARS: Final = 300

_RESPONSE_FORMAT: Final = "response_format"
_STREAM_OPTIONS: Final = "stream_options"

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class OpenAIConfig:
    """Where the endpoint is and how patiently to call it."""

    model: str  # the model name the endpoint knows, e.g. "gpt-4o-mini"
    base_url: str | None = None  # endpoint root including /v1; None = OpenAI's own API
    api_key: str | None = None  # None = OPENAI_API_KEY; optional for local servers; never shown
    # One attempt's wall time (a stream's: until its headers). Lower notices a hung server
    # sooner; too low cuts off long answers.
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 5.0  # TCP/TLS connect bound, so a dead host fails fast
    stream_idle_timeout_s: float = 30.0  # longest silence between stream chunks before "hung"
    # Tries per call, the first included: more rides out longer outages, reports them later.
    max_attempts: int = 4
    backoff_base_s: float = 0.5  # first backoff ceiling (full jitter), doubled per failure
    backoff_max_s: float = 20.0  # the backoff ceiling stops growing here
    max_retry_after_s: float = 60.0  # a 429's Retry-After is honoured up to this long
    # Calls in flight at once: more throughput, but more 429s from a rate-limited endpoint.
    concurrency: int = 4
    # json_mode sends response_format=json_object; False for endpoints that mishandle it.
    send_response_format: bool = True

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("model must be a non-empty model name (--llm-model)")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                    f"got {self.base_url!r}"
                )
        for name in ("request_timeout_s", "connect_timeout_s", "stream_idle_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        if self.connect_timeout_s > self.request_timeout_s:
            raise ConfigError(
                f"connect_timeout_s ({self.connect_timeout_s}) must not exceed "
                f"request_timeout_s ({self.request_timeout_s}), which includes the connect"
            )
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        _ = self.retry_policy  # builds a RetryPolicy, which validates the retry fields

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            max_retry_after_s=self.max_retry_after_s,
        )

    def __repr__(self) -> str:
        shown = []
        for config_field in fields(self):
            value = getattr(self, config_field.name)
            if config_field.name == "api_key" and value is not None:
                value = "***"
            shown.append(f"{config_field.name}={value!r}")
        return f"OpenAIConfig({', '.join(shown)})"


def resolve_api_key(
    explicit: str | None, *, base_url: str | None, env: Mapping[str, str] | None = None
) -> str | None:
    """The key to send: ``explicit``, else ``OPENAI_API_KEY``, else ``None``.

    ``None`` is fine for a local OpenAI-compatible server; for OpenAI's own API it is a
    ``ConfigError`` now rather than a 401 on the first call.
    """
    if explicit:
        return explicit
    from_env = (os.environ if env is None else env).get("OPENAI_API_KEY")
    if from_env:
        return from_env
    if _is_openai_api(base_url):
        raise ConfigError(
            "the OpenAI API needs a key: pass --llm-api-key / --llm-api-key-file or set "
            "OPENAI_API_KEY (a local --llm-base-url needs none)"
        )
    return None


def _is_openai_api(base_url: str | None) -> bool:
    if base_url is None:
        return True
    hostname = urlsplit(base_url).hostname or ""
    return hostname == "openai.com" or hostname.endswith(".openai.com")


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
                progress = _StreamProgress()
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
        progress: _StreamProgress,
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
        chunks = await self._send(send, frozenset(wanted))
        idle_timeout_s = self._config.stream_idle_timeout_s
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise LLMTimeout(
                        f"stream idle for stream_idle_timeout_s={idle_timeout_s} s"
                    ) from exc
                except openai.OpenAIError as exc:
                    raise _translate(exc) from exc
                except ValueError as exc:  # a chunk that is not JSON
                    raise LLMBadResponse(f"unreadable stream chunk: {_detail(exc)}") from exc
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
                rejected = _rejected_option(exc, options)
                if rejected is None:
                    raise _translate(exc) from exc
                self._mark_unsupported(rejected, exc)
            except openai.OpenAIError as exc:
                raise _translate(exc) from exc
            except TimeoutError as exc:
                raise LLMTimeout(
                    f"no answer within request_timeout_s={self._config.request_timeout_s} s"
                ) from exc
            except ValueError as exc:  # a 2xx whose JSON body does not parse
                raise LLMBadResponse(f"unreadable response body: {_detail(exc)}") from exc

    def _mark_unsupported(self, option: str, exc: openai.BadRequestError) -> None:
        if option in self._unsupported_options:
            return
        self._unsupported_options.add(option)
        logger.warning(
            "%s: the endpoint rejected %s (%s); no longer sending it",
            self.name,
            option,
            _detail(exc),
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


class OpenAICompletionStream:
    """A streamed answer: ``async for delta in stream`` yields text deltas in order.

    Failures raise ``LLMError`` from the iteration. Before the first delta, failures are
    retried transparently under the backend's policy; after it they are raised at once,
    because a retry would repeat (differently) text the caller already consumed. A stream
    cut mid-way — the connection closed, or the body ended without a ``finish_reason`` —
    raises ``LLMConnectionError``; a stream with no chunk for ``stream_idle_timeout_s``
    raises ``LLMTimeout``. ``completion`` is set once the stream ends normally.

    The stream holds one of the backend's concurrency slots until it ends: iterate it to
    the end, or use ``async with`` (or ``aclose()``) when stopping early.
    """

    def __init__(
        self, start: Callable[[Callable[[Completion], None]], AsyncGenerator[str, None]]
    ) -> None:
        self._start = start
        self._deltas: AsyncGenerator[str, None] | None = None
        self._completion: Completion | None = None

    @property
    def completion(self) -> Completion | None:
        return self._completion

    def __aiter__(self) -> AsyncIterator[str]:
        if self._deltas is not None:
            raise RuntimeError("a completion stream can be iterated only once")
        self._deltas = self._start(self._finish)
        return self._deltas

    def _finish(self, completion: Completion) -> None:
        self._completion = completion

    async def aclose(self) -> None:
        """Stop the stream early and release its connection and slot; safe to call twice."""
        if self._deltas is not None:
            await self._deltas.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "done" if self._completion else ("started" if self._deltas is not None else "new")
        return f"<OpenAICompletionStream {state}>"


class _StreamProgress:
    """What one streaming attempt has received so far."""

    __slots__ = ("finish_reason", "model", "parts", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: object = None
        self.model = ""

    def absorb(self, chunk: object) -> str:
        """Record one chunk; return its text for the first choice ("" if none)."""
        if not isinstance(chunk, ChatCompletionChunk):
            raise LLMBadResponse(f"expected a chat completion chunk, got {type(chunk).__name__}")
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            raise LLMBadResponse("a stream chunk has no choices list")
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage  # the include_usage chunk: empty choices, whole-call usage
        model = getattr(chunk, "model", None)
        if isinstance(model, str) and model:
            self.model = model
        text = ""
        for choice in choices:
            if getattr(choice, "index", 0) != 0:
                continue
            content = getattr(getattr(choice, "delta", None), "content", None)
            if isinstance(content, str):
                text += content
            finish_reason = getattr(choice, "finish_reason", None)
            if isinstance(finish_reason, str):
                self.finish_reason = finish_reason
        if text:
            self.parts.append(text)
        return text


def _translate(exc: openai.OpenAIError) -> LLMError:
    """The ``LLMError`` for a vendor exception (the caller raises it ``from exc``)."""
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base
        return LLMTimeout(f"the request timed out: {_detail(exc)}")
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({exc.__cause__!r})" if exc.__cause__ is not None else ""
        return LLMConnectionError(f"cannot reach the endpoint: {_detail(exc)}{cause}")
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimited(
            f"rate limited (429): {_detail(exc)}",
            retry_after_s=parse_retry_after_s(exc.response.headers),
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return LLMServerError(f"server error ({status}): {_detail(exc)}", status=status)
        if status == 408:
            return LLMTimeout(f"the endpoint timed out the request (408): {_detail(exc)}")
        return LLMRequestError(f"request refused ({status}): {_detail(exc)}", status=status)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMBadResponse(f"response failed validation: {_detail(exc)}")
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        return LLMServerError(f"the endpoint reported an error: {_detail(exc)}")
    return LLMBadResponse(f"{type(exc).__name__}: {_detail(exc)}")


def _rejected_option(exc: openai.BadRequestError, options: frozenset[str]) -> str | None:
    """The optional parameter a 400 complains about, if it names one we sent."""
    text = str(exc)
    for option in sorted(options):
        if exc.param == option or option in text:
            return option
    return None


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}


def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / _CHARS_PER_TOKEN)


def _detail(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > _MAX_DETAIL_CHARS:
        return text[: _MAX_DETAIL_CHARS - 3] + "..."
    return text
