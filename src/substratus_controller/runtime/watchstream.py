"""Watch decoding: a watch response body (newline-delimited JSON events, arriving in arbitrary chunks) into
`WatchEvent`s. Pure over its input: chunks in, events out, an incomplete last line carried to the next chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import orjson

from substratus_controller.jsontypes import JSON


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: `type` is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR; `object` the raw dict."""

    type: str
    object: JSON


async def decode_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[WatchEvent]:
    """The events of a watch body, one per non-blank line, in order."""
    pending = b""  # an incomplete last line, carried into the next chunk
    async for chunk in chunks:
        data = pending + chunk if pending else chunk
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            line = data[start:newline]
            start = newline + 1
            if line.strip():
                event = orjson.loads(line)
                yield WatchEvent(event["type"], event["object"])
        pending = data[start:]
