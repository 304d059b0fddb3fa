"""The HTTP transport under the ``openai`` client: it bounds how many bytes one response may carry.

The client sets no limit of its own: its SSE decoder buffers a line or an event of any length
("without imposing a line or event size limit"), and a whole answer is read into memory before
it is parsed. A hostile or broken endpoint that sends one endless line, or a gigabyte of JSON,
would hold the node's memory for as long as the timeouts allow (hundreds of MB per second on a
fast link). ``bounded_http_client`` builds the client's ``httpx2.AsyncClient`` on a transport
that counts each response body's bytes as they arrive and raises ``ResponseTooLarge`` from the
read once ``max_bytes`` is passed, so no body, streamed or not, error or success, costs more.

The count is of bytes on the wire: the client asks for ``Accept-Encoding: identity`` so that
they are also the bytes decoded. (A server that compresses anyway is counted compressed.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import httpx2

__all__ = ["ResponseTooLarge", "bounded_http_client"]

# The openai client's own pool sizes (openai._constants.DEFAULT_CONNECTION_LIMITS): a
# client given its own transport must set them on that transport.
_CONNECTION_LIMITS: Final = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


class ResponseTooLarge(Exception):
    """A response body went past the transport's byte bound; the read was stopped there."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the response body exceeded max_response_bytes={max_bytes:,}")
        self.max_bytes = max_bytes


def bounded_http_client(*, max_bytes: int) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for ``AsyncOpenAI(http_client=...)`` whose bodies stop at ``max_bytes``."""
    return httpx2.AsyncClient(
        transport=_BoundedTransport(httpx2.AsyncHTTPTransport(limits=_CONNECTION_LIMITS), max_bytes),
        headers={"Accept-Encoding": "identity"},
        follow_redirects=True,  # as the openai client's default client does
    )


class _BoundedTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _BoundedBody(response.stream, self._max_bytes)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _BoundedBody(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for piece in self._inner:
            received += len(piece)
            if received > self._max_bytes:
                raise ResponseTooLarge(self._max_bytes)
            yield piece

    async def aclose(self) -> None:
        await self._inner.aclose()
