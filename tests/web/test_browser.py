"""The page of `streamkit serve` in a real headless Chromium, against a live `create_app`.

Debian's ``chromium`` (``.ci/run`` installs it) is driven by playwright with
``executable_path``: no browser download. Each test types into the page as a person would,
and reads what the browser rendered. The showcase test saves a screenshot under
``$STREAMKIT_ARTIFACTS`` (default ``build/test-artifacts``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount

from streamkit import AsyncClient, Client, OfflineServer
from streamkit.web import create_app
from tests.scripted_server import Chunk, Finish, Headers, ScriptedServer, Sleep, Step
from tests.web.chat_app import OwnedClientApp
from tests.web.test_app import KEY, MODEL
from tests.web.uvicorn_server import serve

CHROMIUM = os.environ.get("STREAMKIT_CHROMIUM") or shutil.which("chromium")
FIXTURES_DIR = Path(__file__).parent.parent / "fixtures"
ARTIFACTS = Path(os.environ.get("STREAMKIT_ARTIFACTS", "build/test-artifacts"))
MARKUP = "<img src=x onerror=alert(1)>"

# CI sets STREAMKIT_REQUIRE_BROWSER=1 (and installs chromium): there these fail, not skip.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("STREAMKIT_REQUIRE_BROWSER"),
    reason="needs Debian's chromium",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    opened = context.new_page()
    problems: list[str] = []
    # Any script error, alert or refused load (CSP) is a failure of the test that caused it.
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    yield opened
    context.close()
    assert problems == []


def paced(fixture: str, seconds: float) -> list[Step]:
    """A recorded stream served one event at a time, ``seconds`` apart."""
    steps: list[Step] = [Headers()]
    for event in (FIXTURES_DIR / fixture).read_bytes().split(b"\n\n"):
        if event.strip():
            steps += [Chunk(event + b"\n\n"), Sleep(seconds)]
    return [*steps, Finish()]


def open_page(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.wait_for_function(
        "() => document.querySelector('[data-role=backend]').dataset.backend !== undefined"
    )


def ask(page: Page, question: str) -> None:
    """Type the question and press Enter, as a person would."""
    page.click("textarea[name=prompt]")
    page.keyboard.type(question)
    page.keyboard.press("Enter")


def watch_replies(page: Page) -> None:
    """Record every text the newest reply shows, each time the browser changes it."""
    page.evaluate(
        """() => {
            window.seen = [];
            new MutationObserver(() => {
                const replies = document.querySelectorAll('[data-role=assistant]');
                const last = replies[replies.length - 1];
                if (!last) return;
                const text = last.querySelector('.body').textContent;
                if (window.seen[window.seen.length - 1] !== text) window.seen.push(text);
            }).observe(document.querySelector('[data-role=conversation]'),
                       {childList: true, subtree: true, characterData: true});
        }"""
    )


def wait_for_reply(page: Page, count: int) -> Locator:
    """The ``count``-th reply's element, once it has ended (done, stopped or error)."""
    page.wait_for_function(
        f"""() => {{
            const replies = document.querySelectorAll('[data-role=assistant]');
            return replies.length >= {count} &&
                replies[{count - 1}].dataset.state !== 'streaming';
        }}""",
        timeout=20_000,
    )
    return page.locator("[data-role=assistant]").nth(count - 1)


def offline_reply(messages: list[dict[str, Any]]) -> str:
    with Client.offline() as client:
        return client.chat_stream(model=MODEL, messages=messages).final_message().text


def test_a_reply_grows_as_it_streams_and_markup_stays_text(page: Page) -> None:
    with OfflineServer(pacing=0.01) as upstream:
        app = OwnedClientApp(lambda: AsyncClient(KEY, base_url=upstream.base_url))
        with serve(app) as base_url:
            open_page(page, base_url)
            watch_replies(page)
            ask(page, f"Hi {MARKUP}")
            reply = wait_for_reply(page, 1)
            grown: list[str] = page.evaluate("window.seen")
            page.click("textarea[name=prompt]")
            page.keyboard.type("And")
            page.keyboard.press("Shift+Enter")  # a new line, not a send
            page.keyboard.type("again?")
            page.keyboard.press("Enter")
            second = wait_for_reply(page, 2)
            sent = upstream.requests[1].body["messages"]
    first = offline_reply([{"role": "user", "content": f"Hi {MARKUP}"}])
    assert reply.get_attribute("data-state") == "done"
    assert reply.locator(".body").inner_text() == first
    # Several intermediate states, each a prefix of the next, ending in the whole reply.
    intermediate = [text for text in grown if text and text != first]
    assert len(intermediate) >= 5, grown
    assert all(later.startswith(earlier) for earlier, later in zip(grown, grown[1:], strict=False))
    # The reply quotes the question: its markup shows as characters, and nothing ran.
    assert MARKUP in first and MARKUP in reply.inner_text()
    assert page.locator("main img").count() == 0
    users = page.locator("[data-role=user]").all_inner_texts()
    assert users == [f"Hi {MARKUP}", "And\nagain?"]
    assert sent == [
        {"role": "user", "content": f"Hi {MARKUP}"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "And\nagain?"},
    ]
    assert second.get_attribute("data-state") == "done"
    footer = reply.locator("[data-role=stats]").inner_text()
    assert "finish: COMPLETE" in footer and "first token: " in footer and "tokens/s" in footer
    assert page.locator("[data-role=backend]").inner_text().startswith("Cohere")


def test_citations_tool_calls_and_thinking_render_and_are_captured(page: Page) -> None:
    scripted = ScriptedServer()
    scripted.enqueue(
        paced("citations_documents.sse", 0.01),
        paced("tool_call_pretty.sse", 0.01),
        paced("thinking_text.sse", 0.01),
    )
    app = OwnedClientApp(lambda: AsyncClient(KEY, base_url=scripted.base_url))
    with scripted, serve(app) as base_url:
        open_page(page, base_url)
        ask(page, "How tall is the Eiffel Tower, and when was it built?")
        cited = wait_for_reply(page, 1)
        ask(page, "When is the Louvre open?")
        tool = wait_for_reply(page, 2)
        ask(page, "How many r's are in strawberry?")
        thought = wait_for_reply(page, 3)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-page.png"), full_page=True)

    marks = cited.locator("mark")
    assert "330 metres tall" in marks.all_inner_texts()
    part = cited.locator("[data-part=text-0]").inner_text()
    for index in range(marks.count()):
        mark = marks.nth(index)
        start, end = (int(mark.get_attribute(name) or "-1") for name in ("data-start", "data-end"))
        assert part[start:end] == mark.inner_text()
        # The numbers drawn after a mark come from its attribute (CSS), not from the text.
        assert mark.get_attribute("data-sources")
    sources = cited.locator("[data-role=sources] li").all_inner_texts()
    assert sources[:2] == ["Eiffel Tower: facts and figures", "Exposition Universelle (1889)"]

    call = tool.locator("[data-role=tool-call]").first
    assert call.get_attribute("data-state") == "input-available"
    assert call.inner_text().startswith("web_search")
    shown = json.loads(call.locator("[data-role=tool-input]").inner_text())
    assert shown == {"query": "Louvre opening hours", "max_results": 5}  # parsed, then drawn

    details = thought.locator("details[data-role=thinking]")
    assert details.count() == 1
    assert details.get_attribute("open") is None  # collapsed
    assert thought.locator(".body > .text").inner_text()
    assert (ARTIFACTS / "chat-page.png").stat().st_size > 10_000


def test_document_titles_and_urls_from_the_server_are_shown_as_text(page: Page) -> None:
    recorded = (FIXTURES_DIR / "citations_documents.sse").read_bytes()
    hostile = recorded.replace(b"Eiffel Tower: facts and figures", MARKUP.encode())
    scripted = ScriptedServer(default=[Headers(), Chunk(hostile), Finish()])
    app = OwnedClientApp(lambda: AsyncClient(KEY, base_url=scripted.base_url))
    with scripted, serve(app) as base_url:
        open_page(page, base_url)
        ask(page, "Tell me about the tower")
        reply = wait_for_reply(page, 1)
    assert MARKUP in reply.locator("[data-role=sources]").inner_text()
    assert page.locator("main img").count() == 0


def test_stop_ends_the_reply_and_the_upstream_request(page: Page) -> None:
    with OfflineServer(pacing=0.05) as upstream:
        app = OwnedClientApp(lambda: AsyncClient(KEY, base_url=upstream.base_url))
        with serve(app) as base_url:
            open_page(page, base_url)
            ask(page, "Tell me about Paris")
            page.wait_for_function(
                "() => document.querySelector('[data-role=assistant] .body')?.textContent"
            )
            page.click("button[data-action=stop]")
            reply = wait_for_reply(page, 1)
            stopped_at = time.monotonic()
            while upstream_open(upstream) and time.monotonic() < stopped_at + 1:
                time.sleep(0.02)
            still_open = upstream_open(upstream)
            sent = list(upstream.requests[0].sent_events)
            time.sleep(0.3)  # six pacing intervals: a live stream would have sent more
            later = list(upstream.requests[0].sent_events)
            shown = reply.locator(".body").inner_text()
            ask(page, "Hi")
            wait_for_reply(page, 2)
            second = upstream.requests[1].body["messages"]
    assert reply.get_attribute("data-state") == "stopped"
    assert "stopped" in reply.locator("[data-role=stats]").inner_text()
    assert still_open == 0, "the upstream request outlived the browser's Stop by over a second"
    assert later == sent and "[DONE]" not in sent and "message-end" not in sent
    # The stopped reply stays in the conversation: the next request carries what was shown.
    assert second[1] == {"role": "assistant", "content": shown}
    assert [message["role"] for message in second] == ["user", "assistant", "user"]


def upstream_open(server: OfflineServer) -> int:
    """Connections the offline backend is still serving (its own bookkeeping)."""
    httpd = server._httpd
    assert httpd is not None
    with httpd._connections_lock:
        return len(httpd._connections)


class _Mounted:
    """An ASGI app that forwards to the chat app made in the outer app's lifespan."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def test_the_page_works_mounted_under_a_prefix_of_a_larger_app(page: Page) -> None:
    mounted = _Mounted()
    with OfflineServer() as upstream:

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with AsyncClient(KEY, base_url=upstream.base_url) as client:
                mounted.app = create_app(client, model=MODEL)
                yield

        outer = Starlette(routes=[Mount("/chat", app=mounted)], lifespan=lifespan)
        with serve(outer) as base_url:
            page.goto(base_url + "/chat")  # redirected to /chat/: the page's URLs are relative
            page.wait_for_function(
                "() => document.querySelector('[data-role=backend]').dataset.backend"
            )
            ask(page, "Hi from a mounted page")
            reply = wait_for_reply(page, 1)
    assert page.url == base_url + "/chat/"
    assert reply.get_attribute("data-state") == "done"
    expected = offline_reply([{"role": "user", "content": "Hi from a mounted page"}])
    assert reply.locator(".body").inner_text() == expected
