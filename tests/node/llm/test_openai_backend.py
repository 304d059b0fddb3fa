"""OpenAIBackend through the real ``openai`` client against a loopback OpenAI-compatible server.

No mocks: every failure is produced by the test server on the wire (429 with Retry-After, 5xx,
a response that never comes, a stream cut mid-body, a stream that falls silent).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterable, Callable

import openai
import pytest

from node.errors import (
    ConfigError,
    LLMBadResponse,
    LLMConnectionError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
)
from node.llm.base import ChatMessage, Completion, LLMBackend, Usage
from node.llm.openai_backend import OpenAIBackend, OpenAIConfig, resolve_api_key
from tests.node.llm.openai_test_server import (
    OpenAITestServer,
    bad_json,
    client_error,
    hang,
    ok,
    rate_limited,
    server_error,
    slow_stream,
    stream_cut,
)

# Real sockets on loopback and the real openai client: an integration test (fast, but real I/O).
pytestmark = pytest.mark.slow

MakeBackend = Callable[..., OpenAIBackend]

MESSAGES = [
    ChatMessage(role="system", content="You list things."),
    ChatMessage(role="user", content="List three museums in Paris."),
]
PROMPT_WORDS = 3 + 5  # the test server counts words as tokens
ANSWER = "Louvre, Musée d'Orsay, Centre Pompidou"


async def _collect(stream: AsyncIterable[str]) -> list[str]:
    return [delta async for delta in stream]


# --- whole answers ------------------------------------------------------------------------------


async def test_complete_returns_text_usage_latency_and_one_attempt(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(ok(ANSWER))
    completion = await make_backend().complete(MESSAGES, max_tokens=64)

    assert completion.text == ANSWER
    assert completion.usage == Usage(prompt_tokens=PROMPT_WORDS, completion_tokens=5)
    assert completion.attempts == 1
    assert completion.finish_reason == "stop"
    assert completion.model == "test-model"
    assert 0 < completion.latency_s < 2
    [request] = openai_server.requests
    assert request.body["model"] == "test-model"
    assert request.body["max_tokens"] == 64
    assert request.body["messages"] == [
        {"role": "system", "content": "You list things."},
        {"role": "user", "content": "List three museums in Paris."},
    ]
    assert "response_format" not in request.body
    assert request.headers["Authorization"] == "Bearer sk-test-key"


async def test_max_tokens_is_omitted_when_not_given(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    await make_backend().complete(MESSAGES)
    assert "max_tokens" not in openai_server.requests[0].body


async def test_429_retry_after_ms_is_honoured_then_succeeds(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """The wait follows the server's hint (200 ms), not the 10 ms backoff."""
    openai_server.script(rate_limited(retry_after_ms="200"), ok(ANSWER))
    started = time.monotonic()
    completion = await make_backend().complete(MESSAGES)
    elapsed_s = time.monotonic() - started

    assert completion.text == ANSWER
    assert completion.attempts == 2
    assert len(openai_server.requests) == 2
    assert elapsed_s >= 0.19
    assert completion.latency_s >= 0.19


async def test_429_retry_after_seconds_is_capped_by_max_retry_after(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """A Retry-After of 1 s is honoured only up to max_retry_after_s (0.25 s)."""
    openai_server.script(rate_limited(retry_after="1"), ok(ANSWER))
    started = time.monotonic()
    completion = await make_backend(max_retry_after_s=0.25).complete(MESSAGES)
    elapsed_s = time.monotonic() - started

    assert completion.attempts == 2
    assert 0.24 <= elapsed_s < 0.9


async def test_429_forever_raises_rate_limited_after_max_attempts(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.always(rate_limited(retry_after_ms="20"))
    with pytest.raises(LLMRateLimited) as caught:
        await make_backend(max_attempts=3).complete(MESSAGES)

    assert caught.value.retry_after_s == pytest.approx(0.02)
    assert len(openai_server.requests) == 3


async def test_500_then_success_is_retried(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(server_error(500), ok(ANSWER))
    completion = await make_backend().complete(MESSAGES)
    assert completion.text == ANSWER
    assert completion.attempts == 2


async def test_5xx_forever_raises_server_error_with_status(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.always(server_error(503))
    with pytest.raises(LLMServerError) as caught:
        await make_backend(max_attempts=3).complete(MESSAGES)
    assert caught.value.status == 503
    assert len(openai_server.requests) == 3


async def test_hung_response_times_out_each_attempt_within_a_bounded_total(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """Two attempts of 0.3 s each: about 0.6 s in all, never the client's 600 s default."""
    openai_server.always(hang())
    backend = make_backend(request_timeout_s=0.3, connect_timeout_s=0.3, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        await backend.complete(MESSAGES)
    elapsed_s = time.monotonic() - started

    assert len(openai_server.requests) == 2
    assert 0.55 <= elapsed_s < 1.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_4xx_raises_request_error_without_retrying(
    openai_server: OpenAITestServer, make_backend: MakeBackend, status: int
) -> None:
    openai_server.always(client_error(status))
    with pytest.raises(LLMRequestError) as caught:
        await make_backend(max_attempts=5).complete(MESSAGES)
    assert caught.value.status == status
    assert not caught.value.retryable
    assert len(openai_server.requests) == 1


async def test_malformed_2xx_body_is_a_bad_response_and_is_retried(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(bad_json(), ok(ANSWER))
    completion = await make_backend().complete(MESSAGES)
    assert completion.attempts == 2

    openai_server.always(bad_json())
    with pytest.raises(LLMBadResponse):
        await make_backend(max_attempts=2).complete(MESSAGES)


@pytest.mark.parametrize(
    "body",
    [
        '{"object": "chat.completion"}',
        '{"object": "chat.completion", "choices": []}',
        '{"object": "chat.completion", "choices": "none"}',
        '{"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant"}}]}',
        '["not", "an", "object"]',
    ],
)
async def test_2xx_json_of_the_wrong_shape_is_a_bad_response(
    openai_server: OpenAITestServer, make_backend: MakeBackend, body: str
) -> None:
    openai_server.always(bad_json(body))
    with pytest.raises(LLMBadResponse):
        await make_backend(max_attempts=1).complete(MESSAGES)


async def test_missing_usage_is_estimated_from_characters(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(ok("x" * 40, with_usage=False))
    completion = await make_backend().complete(MESSAGES)
    prompt_chars = sum(len(message.content) for message in MESSAGES)
    assert completion.usage == Usage(prompt_tokens=-(-prompt_chars // 4), completion_tokens=10)


async def test_connection_refused_raises_connection_error(make_backend: MakeBackend) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    backend = make_backend(base_url=f"http://127.0.0.1:{closed_port}/v1", max_attempts=2)
    started = time.monotonic()
    with pytest.raises(LLMConnectionError):
        await backend.complete(MESSAGES)
    assert time.monotonic() - started < 1.0


# --- json_mode and the response_format fallback -------------------------------------------------


async def test_json_mode_sends_response_format(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    await make_backend().complete(MESSAGES, json_mode=True)
    assert openai_server.requests[0].body["response_format"] == {"type": "json_object"}


async def test_json_mode_sends_nothing_when_response_format_is_disabled(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    await make_backend(send_response_format=False).complete(MESSAGES, json_mode=True)
    assert "response_format" not in openai_server.requests[0].body


async def test_rejected_response_format_falls_back_once_and_is_remembered(
    openai_server: OpenAITestServer, make_backend: MakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.unsupported_params = {"response_format"}
    backend = make_backend()
    with caplog.at_level(logging.WARNING, logger="node.llm.openai_backend"):
        first = await backend.complete(MESSAGES, json_mode=True)
        second = await backend.complete(MESSAGES, json_mode=True)

    assert first.text and second.text
    sent = ["response_format" in request.body for request in openai_server.requests]
    assert sent == [True, False, False]
    rejections = [
        record for record in caplog.records if "rejected response_format" in record.getMessage()
    ]
    assert len(rejections) == 1


# --- streams ------------------------------------------------------------------------------------


async def test_stream_yields_deltas_in_order_and_sets_the_completion(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(ok(ANSWER))
    stream = make_backend().stream(MESSAGES, max_tokens=32)
    assert stream.completion is None

    deltas = await _collect(stream)

    assert deltas == ["Louvre,", " Musée", " d'Orsay,", " Centre", " Pompidou"]
    completion = stream.completion
    assert isinstance(completion, Completion)
    assert completion.text == ANSWER
    assert completion.usage == Usage(prompt_tokens=PROMPT_WORDS, completion_tokens=5)
    assert completion.finish_reason == "stop"
    assert completion.attempts == 1
    [request] = openai_server.requests
    assert request.stream
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_tokens"] == 32


async def test_stream_cut_after_deltas_raises_after_them_and_is_not_retried(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(stream_cut(ANSWER, after_deltas=2), ok("a retry would show this"))
    stream = make_backend(max_attempts=3).stream(MESSAGES)
    received: list[str] = []
    with pytest.raises(LLMConnectionError):
        async for delta in stream:
            received.append(delta)

    assert received == ["Louvre,", " Musée"]
    assert stream.completion is None
    assert len(openai_server.requests) == 1


async def test_stream_ending_without_its_final_chunk_counts_as_cut(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """A body that ends cleanly but with no finish_reason and no [DONE] is not a whole answer."""
    openai_server.script(stream_cut(ANSWER, after_deltas=2, graceful=True))
    stream = make_backend().stream(MESSAGES)
    received: list[str] = []
    with pytest.raises(LLMConnectionError, match="final chunk"):
        async for delta in stream:
            received.append(delta)
    assert received == ["Louvre,", " Musée"]
    assert len(openai_server.requests) == 1


async def test_stream_cut_before_any_delta_is_retried_transparently(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(stream_cut("never seen", after_deltas=0), ok(ANSWER))
    stream = make_backend().stream(MESSAGES)
    assert "".join(await _collect(stream)) == ANSWER
    assert stream.completion is not None
    assert stream.completion.attempts == 2
    assert len(openai_server.requests) == 2


async def test_stream_rate_limited_before_any_delta_is_retried(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(rate_limited(retry_after_ms="50"), server_error(502), ok(ANSWER))
    stream = make_backend().stream(MESSAGES)
    assert "".join(await _collect(stream)) == ANSWER
    assert stream.completion is not None and stream.completion.attempts == 3


async def test_stream_idle_gap_raises_timeout(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(slow_stream(ANSWER, after_deltas=1, gap_s=2.0))
    stream = make_backend(stream_idle_timeout_s=0.2).stream(MESSAGES)
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        async for delta in stream:
            received.append(delta)

    assert received == ["Louvre,"]
    assert time.monotonic() - started < 1.0
    assert len(openai_server.requests) == 1


async def test_stream_gap_shorter_than_the_idle_timeout_is_fine(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(slow_stream(ANSWER, after_deltas=2, gap_s=0.1))
    stream = make_backend(stream_idle_timeout_s=0.5).stream(MESSAGES)
    assert "".join(await _collect(stream)) == ANSWER


async def test_stream_hung_before_headers_times_out_and_retries(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.script(hang(), ok(ANSWER))
    stream = make_backend(
        request_timeout_s=0.3, connect_timeout_s=0.3, stream_idle_timeout_s=0.3
    ).stream(MESSAGES)
    assert "".join(await _collect(stream)) == ANSWER
    assert stream.completion is not None and stream.completion.attempts == 2


async def test_rejected_stream_options_falls_back_and_estimates_usage(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    openai_server.unsupported_params = {"stream_options"}
    openai_server.always(ok(ANSWER))
    backend = make_backend()
    first = backend.stream(MESSAGES)
    assert "".join(await _collect(first)) == ANSWER
    second = backend.stream(MESSAGES)
    assert "".join(await _collect(second)) == ANSWER

    sent = ["stream_options" in request.body for request in openai_server.requests]
    assert sent == [True, False, False]
    assert first.completion is not None
    assert first.completion.usage.completion_tokens > 0  # estimated, the server reported none


async def test_stream_in_json_mode_sends_response_format(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    await _collect(make_backend().stream(MESSAGES, json_mode=True))
    assert openai_server.requests[0].body["response_format"] == {"type": "json_object"}


async def test_a_stream_can_be_iterated_only_once(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    stream = make_backend().stream(MESSAGES)
    await _collect(stream)
    with pytest.raises(RuntimeError, match="only once"):
        stream.__aiter__()


async def test_stopping_a_stream_early_releases_its_slot(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    backend = make_backend(concurrency=1)
    async with backend.stream(MESSAGES) as stream:
        async for _ in stream:
            assert backend.in_flight == 1
            break
    assert backend.in_flight == 0
    assert stream.completion is None
    # the single slot is free again: another call goes through
    assert (await backend.complete(MESSAGES)).attempts == 1


# --- concurrency, lifecycle ---------------------------------------------------------------------


async def test_concurrency_bound_is_respected(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """Six concurrent calls with concurrency=2: the server never sees more than two at once."""
    openai_server.always(ok(ANSWER, delay_s=0.15))
    backend = make_backend(concurrency=2)
    completions = await asyncio.gather(*(backend.complete(MESSAGES) for _ in range(6)))

    assert [completion.text for completion in completions] == [ANSWER] * 6
    assert openai_server.max_in_flight == 2
    assert len(openai_server.requests) == 6
    assert backend.in_flight == 0


async def test_backend_is_an_llm_backend_with_a_name_and_a_keyless_repr(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    backend = make_backend(api_key="sk-very-secret")
    assert isinstance(backend, LLMBackend)
    assert backend.name == "openai:test-model"
    shown = repr(backend)
    assert "model=test-model" in shown
    assert openai_server.base_url in shown
    assert "in_flight=0/4" in shown
    assert "sk-very-secret" not in shown
    assert "sk-very-secret" not in repr(backend.config)
    assert "api_key='***'" in repr(backend.config)


async def test_aclose_is_idempotent_and_a_closed_backend_refuses_calls(
    openai_server: OpenAITestServer,
) -> None:
    config = OpenAIConfig(model="test-model", base_url=openai_server.base_url, api_key="k")
    async with OpenAIBackend(config) as backend:
        assert (await backend.complete(MESSAGES)).attempts == 1
    await backend.aclose()
    assert "closed" in repr(backend)
    with pytest.raises(LLMRequestError, match="closed"):
        await backend.complete(MESSAGES)
    assert len(openai_server.requests) == 1


async def test_models_endpoint_lists_the_model(openai_server: OpenAITestServer) -> None:
    """The test server answers GET /v1/models as OpenAI does, through the real client."""
    async with openai.AsyncOpenAI(
        base_url=openai_server.base_url, api_key="k", max_retries=0
    ) as client:
        models = await client.models.list()
    assert [model.id async for model in models] == ["test-model"]


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": " "}, "model"),
        ({"base_url": "localhost:8000/v1"}, "base_url"),
        ({"base_url": "ftp://example.org/v1"}, "base_url"),
        ({"request_timeout_s": 0}, "request_timeout_s"),
        ({"request_timeout_s": float("inf")}, "request_timeout_s"),
        ({"connect_timeout_s": -1}, "connect_timeout_s"),
        ({"stream_idle_timeout_s": float("nan")}, "stream_idle_timeout_s"),
        ({"connect_timeout_s": 10, "request_timeout_s": 5}, "connect_timeout_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_base_s": -0.1}, "backoff_base_s"),
        ({"backoff_base_s": 2.0, "backoff_max_s": 1.0}, "backoff_max_s"),
        ({"max_retry_after_s": -1}, "max_retry_after_s"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_config_validation_names_the_bad_field(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"model": "m", "base_url": "http://127.0.0.1:1/v1"}
    with pytest.raises(ConfigError, match=message):
        OpenAIConfig(**{**values, **fields})  # type: ignore[arg-type]


def test_api_key_explicit_beats_the_environment() -> None:
    env = {"OPENAI_API_KEY": "from-env"}
    assert resolve_api_key("explicit", base_url=None, env=env) == "explicit"
    assert resolve_api_key(None, base_url=None, env=env) == "from-env"
    assert resolve_api_key(None, base_url="http://127.0.0.1:8000/v1", env=env) == "from-env"


def test_api_key_is_optional_for_a_local_server_only() -> None:
    assert resolve_api_key(None, base_url="http://127.0.0.1:8000/v1", env={}) is None
    for openai_url in (None, "https://api.openai.com/v1"):
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            resolve_api_key(None, base_url=openai_url, env={})


def test_backend_for_openai_without_a_key_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="needs a key"):
        OpenAIBackend(OpenAIConfig(model="gpt-4o-mini"), env={})
