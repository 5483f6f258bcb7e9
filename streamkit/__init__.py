"""streamkit: Cohere V2 chat streams as Observables of typed events.

::

    from streamkit import Client, to_iterator

    with Client.offline() as client:  # Client() with CO_API_KEY set talks to Cohere
        stream = client.chat_stream(
            model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]
        )
        for event in to_iterator(stream):
            print(event.type)

Streams are cold: each subscription sends its own request. To share one request between
several consumers, publish it (``shared = stream.pipe(reactivex.operators.publish())``),
subscribe each consumer, then ``shared.connect()``: unlike ``share()``, no consumer can
subscribe after the first events went by. The operators live in
the ``operators`` package; the errors in :mod:`streamkit.errors`.
"""

import logging

from streamkit._accumulate import MessageAccumulator, accumulate
from streamkit._adapters import (
    AsyncStreamIterator,
    StreamIterator,
    from_events,
    from_sdk_stream,
    from_sse_bytes,
    from_sse_file,
    to_async_iterator,
    to_iterator,
)
from streamkit._client import DEFAULT_BASE_URL, AsyncClient, Client
from streamkit._decode import DEFAULT_MAX_EVENT_SIZE, ChatEventDecoder
from streamkit._display import (
    DisplayHandle,
    adisplay_stream,
    describe_event,
    display_partial,
    display_stream,
    load_ipython_extension,
    render_html,
    render_text,
)
from streamkit._events import (
    CHAT_EVENT_ADAPTER,
    EVENT_TYPES,
    BilledUnits,
    ChatEvent,
    Citation,
    CitationEndEvent,
    CitationStartEvent,
    ContentDeltaEvent,
    ContentEndEvent,
    ContentStartEvent,
    DebugEvent,
    ErrorEvent,
    LogprobItem,
    MessageEndEvent,
    MessageStartEvent,
    Source,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallFunction,
    ToolCallStartEvent,
    ToolPlanDeltaEvent,
    UnknownEvent,
    Usage,
    UsageTokens,
    event_to_dict,
)
from streamkit._httpx_async import AsyncHttpxTransport
from streamkit._httpx_sync import HttpxTransport
from streamkit._message import (
    AssistantMessage,
    ChatResponse,
    ContentItem,
    OtherContent,
    TextContent,
    ThinkingContent,
)
from streamkit._native import NativeTransport
from streamkit._offline import OfflineServer
from streamkit._partial_json import MISSING, PartialJSONParser
from streamkit._record import RecordedEvent, Recording, read_recording, record, replay
from streamkit._request import NOT_GIVEN, NotGiven, RequestOptions
from streamkit._run_events import RunEvent, StepEndEvent, StopReason, ToolResultEvent
from streamkit._runner import ToolRun, run_tools
from streamkit._sse import SSEDecoder
from streamkit._sse_event import ServerSentEvent
from streamkit._stats import StreamStats, StreamStatsTracker, stream_stats
from streamkit._stream import AsyncChatStream, ChatStream
from streamkit._structured import json_response_format
from streamkit._tools import Tool, tool
from streamkit._transport import DEFAULT_TIMEOUT
from streamkit._version import __version__
from streamkit.errors import NoEventLoopError

# A library logs and lets the application decide where records go (logging HOWTO).
logging.getLogger("streamkit").addHandler(logging.NullHandler())

__all__ = [
    "CHAT_EVENT_ADAPTER",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_TIMEOUT",
    "EVENT_TYPES",
    "MISSING",
    "NOT_GIVEN",
    "AssistantMessage",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncHttpxTransport",
    "AsyncStreamIterator",
    "BilledUnits",
    "ChatEvent",
    "ChatEventDecoder",
    "ChatResponse",
    "ChatStream",
    "Citation",
    "CitationEndEvent",
    "CitationStartEvent",
    "Client",
    "ContentDeltaEvent",
    "ContentEndEvent",
    "ContentItem",
    "ContentStartEvent",
    "DebugEvent",
    "DisplayHandle",
    "ErrorEvent",
    "HttpxTransport",
    "LogprobItem",
    "MessageAccumulator",
    "MessageEndEvent",
    "MessageStartEvent",
    "NativeTransport",
    "NoEventLoopError",
    "NotGiven",
    "OfflineServer",
    "OtherContent",
    "PartialJSONParser",
    "RecordedEvent",
    "Recording",
    "RequestOptions",
    "RunEvent",
    "SSEDecoder",
    "ServerSentEvent",
    "Source",
    "StepEndEvent",
    "StopReason",
    "StreamIterator",
    "StreamStats",
    "StreamStatsTracker",
    "TextContent",
    "ThinkingContent",
    "Tool",
    "ToolCall",
    "ToolCallDeltaEvent",
    "ToolCallEndEvent",
    "ToolCallFunction",
    "ToolCallStartEvent",
    "ToolPlanDeltaEvent",
    "ToolResultEvent",
    "ToolRun",
    "UnknownEvent",
    "Usage",
    "UsageTokens",
    "__version__",
    "accumulate",
    "adisplay_stream",
    "describe_event",
    "display_partial",
    "display_stream",
    "event_to_dict",
    "from_events",
    "from_sdk_stream",
    "from_sse_bytes",
    "from_sse_file",
    "json_response_format",
    "load_ipython_extension",
    "read_recording",
    "record",
    "render_html",
    "render_text",
    "replay",
    "run_tools",
    "stream_stats",
    "to_async_iterator",
    "to_iterator",
    "tool",
]
