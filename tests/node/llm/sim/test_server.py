"""Tests for node.llm.sim.server: the simulated LLM over an OpenAI-compatible HTTP API.

aiohttp's test client drives the app over a real loopback socket.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.server import MAX_REQUEST_BYTES, create_sim_app
from node.llm.sim.universe import Universe
from node.parser import parse_answer
from tests.node.llm.sim.conftest import enumeration_messages

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]

CHAT = "/v1/chat/completions"
MESSAGES = [
    {"role": message.role, "content": message.content}
    for message in enumeration_messages("countries of the world", ["Africa"], count=12)
]


@pytest.fixture
async def make_client(countries: Universe) -> AsyncIterator[MakeClient]:
    """Starts sim apps over the countries with the given params; closes them at teardown."""
    clients: list[TestClient[Any, Any]] = []

    async def make(params: SimParams | None = None, *, seed: int = 0, hang_s: float = 0.05) -> TestClient[Any, Any]:
        model = SimulatedModel(countries, params or SimParams.fault_free())
        client = TestClient(TestServer(create_sim_app(model, seed=seed, hang_s=hang_s)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def _events(body: str) -> list[str]:
    """The data payloads of a server-sent event stream, in order."""
    return [line.removeprefix("data: ") for line in body.split("\n\n") if line.startswith("data: ")]


async def _assert_error(response: Any, status: int, fragment: str) -> None:
    assert response.status == status
    body = await response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert fragment in body["error"]["message"]


async def test_chat_completion_returns_a_list_in_openai_shape(make_client: MakeClient) -> None:
    """A non-streamed request gets a chat.completion whose content parses into countries."""
    client = await make_client()
    response = await client.post(CHAT, json={"model": "anything", "messages": MESSAGES})
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "sim-countries"
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert 9 <= len(parse_answer(choice["message"]["content"]).entries) <= 15
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_stream_sends_sse_chunks_then_done(make_client: MakeClient) -> None:
    """A streamed request gets role, content deltas, a finish chunk, then [DONE]."""
    client = await make_client()
    response = await client.post(CHAT, json={"messages": MESSAGES, "stream": True, "seed": 5})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = _events(await response.text())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert not any("usage" in chunk for chunk in chunks)  # not asked for
    content = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert len(chunks) > 4

    whole = await client.post(CHAT, json={"messages": MESSAGES, "seed": 5})
    assert content == (await whole.json())["choices"][0]["message"]["content"]


async def test_stream_with_include_usage_ends_with_a_usage_chunk(make_client: MakeClient) -> None:
    """stream_options.include_usage adds a chunk with empty choices and the usage, before [DONE]."""
    client = await make_client()
    payload = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    events = _events(await (await client.post(CHAT, json=payload)).text())
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] > 0
    assert usage_chunk["usage"]["prompt_tokens"] == sum(len(m["content"]) for m in MESSAGES) // 4


async def test_models_lists_the_sim_model(make_client: MakeClient) -> None:
    """GET /v1/models names the one simulated model."""
    client = await make_client()
    body = await (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == ["sim-countries"]


async def test_content_parts_are_accepted(make_client: MakeClient) -> None:
    """Message content given as a list of text parts is joined, as OpenAI allows."""
    client = await make_client()
    parts = [{"role": "user", "content": [{"type": "text", "text": "Topic: countries\n"}, {"type": "text", "text": "List 3"}]}]
    body = await (await client.post(CHAT, json={"messages": parts})).json()
    assert 2 <= len(parse_answer(body["choices"][0]["message"]["content"]).entries) <= 4


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"this is not json", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"\xff\xfe\x00garbage", 400, "not valid JSON"),
        (DEEP, 400, "not valid JSON"),
        (b"[1, 2, 3]", 400, "JSON object"),
        (b'{"model": "x"}', 400, "'messages'"),
        (b'{"messages": []}', 400, "'messages'"),
        (b'{"messages": "hello"}', 400, "'messages'"),
        (b'{"messages": [42]}', 400, "messages[0] must be an object"),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "messages[0].role"),
        (b'{"messages": [{"content": "hi"}]}', 400, "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 7}]}', 400, "content"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, "content"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', 400, "'stream'"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "seed": "abc"}', 400, "'seed'"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "seed": true}', 400, "'seed'"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream_options": 3}', 400, "'stream_options'"),
    ],
)
async def test_garbage_bodies_get_a_400_and_the_server_keeps_serving(
    make_client: MakeClient, body: bytes, status: int, fragment: str
) -> None:
    """Each bad body gets an OpenAI-style error; the next good request is answered."""
    client = await make_client()
    response = await client.post(CHAT, data=body, headers={"Content-Type": "application/json"})
    await _assert_error(response, status, fragment)
    good = await client.post(CHAT, json={"messages": MESSAGES})
    assert good.status == 200


async def test_unknown_charset_gets_a_400(make_client: MakeClient) -> None:
    """A Content-Type naming a charset nobody knows is a bad request, not a server error."""
    client = await make_client()
    body = json.dumps({"messages": MESSAGES}).encode()
    response = await client.post(CHAT, data=body, headers={"Content-Type": "application/json; charset=bogus"})
    await _assert_error(response, 400, "charset")
    assert (await client.post(CHAT, json={"messages": MESSAGES})).status == 200


async def test_lone_surrogate_in_the_prompt_streams_whole(countries: Universe, make_client: MakeClient) -> None:
    """A prompt with a lone surrogate (legal JSON) echoed into the answer still streams to [DONE]."""
    numbered = SimParams.fault_free().replace(format_weights=(0.0, 0.0, 1.0, 0.0, 0.0))  # names the topic
    client = await make_client(numbered)
    body = b'{"messages": [{"role": "user", "content": "Topic: odd \\ud800 names\\nList 3"}], "stream": true}'
    response = await client.post(CHAT, data=body, headers={"Content-Type": "application/json"})
    events = _events(await response.text())
    assert events[-1] == "[DONE]"
    content = "".join(json.loads(event)["choices"][0]["delta"].get("content", "") for event in events[:-1])
    assert "odd \ud800 names" in content


async def test_oversized_body_gets_413(make_client: MakeClient) -> None:
    """A body over MAX_REQUEST_BYTES is refused with 413, and serving goes on."""
    client = await make_client()
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * (MAX_REQUEST_BYTES + 10)}]}).encode()
    await _assert_error(await client.post(CHAT, data=io.BytesIO(huge)), 413, "over")
    assert (await client.post(CHAT, json={"messages": MESSAGES})).status == 200


async def test_bad_requests_do_not_advance_the_request_sequence(make_client: MakeClient) -> None:
    """A refused request changes nothing: the next good one gets the answer it would have."""
    clean = await make_client(seed=9)
    disturbed = await make_client(seed=9)
    for _ in range(3):
        await disturbed.post(CHAT, data=b"{nope")
    answers = []
    for client in (clean, disturbed):
        answers.append((await (await client.post(CHAT, json={"messages": MESSAGES})).json())["choices"])
    assert answers[0] == answers[1]


async def test_unknown_route_and_wrong_method_are_refused(make_client: MakeClient) -> None:
    """Only the two routes exist, each with its method."""
    client = await make_client()
    assert (await client.get(CHAT)).status == 405
    assert (await client.post("/v1/completions", json={})).status == 404


async def test_rate_limit_preset_answers_429_with_retry_after(make_client: MakeClient) -> None:
    """A simulated 429 carries Retry-After and retry-after-ms, and an OpenAI-style error."""
    client = await make_client(SimParams.fault_free().replace(rate_limit_rate=1.0, retry_after_s=1.5))
    response = await client.post(CHAT, json={"messages": MESSAGES})
    await _assert_error(response, 429, "rate limit")
    assert response.headers["Retry-After"] == "1.5"
    assert response.headers["retry-after-ms"] == "1500"
    assert (await response.json())["error"]["type"] == "rate_limit_error"


async def test_server_error_preset_answers_500(make_client: MakeClient) -> None:
    """A simulated server error is a 500 with an error body."""
    client = await make_client(SimParams.fault_free().replace(server_error_rate=1.0))
    await _assert_error(await client.post(CHAT, json={"messages": MESSAGES}), 500, "server error")


async def test_hang_preset_answers_nothing_for_hang_s(make_client: MakeClient) -> None:
    """A simulated hang holds the response for hang_s, then gives up with a 504."""
    client = await make_client(SimParams.fault_free().replace(hang_rate=1.0), hang_s=0.2)
    started = time.monotonic()
    response = await client.post(CHAT, json={"messages": MESSAGES, "stream": True})
    assert time.monotonic() - started >= 0.2
    assert response.status == 504


@pytest.mark.parametrize("stream", [False, True])
async def test_truncate_preset_finishes_with_length(make_client: MakeClient, stream: bool) -> None:
    """A truncated answer says finish_reason "length", whole or streamed."""
    client = await make_client(SimParams.fault_free().replace(truncate_rate=1.0))
    response = await client.post(CHAT, json={"messages": MESSAGES, "stream": stream})
    if stream:
        events = _events(await response.text())
        assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
    else:
        assert (await response.json())["choices"][0]["finish_reason"] == "length"


async def test_request_seed_makes_answers_reproducible(make_client: MakeClient) -> None:
    """The same seed and messages give the same answer; another seed, or none, another."""
    client = await make_client()

    async def content(**extra: Any) -> str:
        body = await (await client.post(CHAT, json={"messages": MESSAGES, **extra})).json()
        text: str = body["choices"][0]["message"]["content"]
        return text

    first = await content(seed=1)
    assert await content(seed=1) == first
    assert await content(seed=2) != first
    unseeded = {await content() for _ in range(3)}
    assert len(unseeded) == 3


async def test_server_seed_reproduces_unseeded_request_sequences(make_client: MakeClient) -> None:
    """Two servers with one seed answer the n-th unseeded request alike."""
    one, other = await make_client(seed=4), await make_client(seed=4)
    for _ in range(3):
        bodies = [await (await c.post(CHAT, json={"messages": MESSAGES})).json() for c in (one, other)]
        assert bodies[0]["choices"] == bodies[1]["choices"]


async def test_seeded_request_retried_after_a_fault_can_succeed(make_client: MakeClient) -> None:
    """Faults follow the request order, not the seed: retrying a seeded 429 gets through."""
    client = await make_client(SimParams.fault_free().replace(rate_limit_rate=0.5, retry_after_s=0.0))
    statuses = []
    texts = set()
    for _ in range(12):
        response = await client.post(CHAT, json={"messages": MESSAGES, "seed": 77})
        statuses.append(response.status)
        if response.status == 200:
            texts.add((await response.json())["choices"][0]["message"]["content"])
    assert set(statuses) == {200, 429}
    assert len(texts) == 1  # the seed still fixes the answer
