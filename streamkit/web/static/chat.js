// The page of `streamkit serve`: posts what the AI SDK's `useChat` sends to /api/chat and
// renders the UI message stream (server-sent events, one JSON chunk each) as it arrives.
// Model text only ever reaches the page as text nodes (textContent, createTextNode): never
// as HTML, so a reply that contains markup shows its characters.
// An ES module (strict by itself). The event stream is parsed by eventsource-parser (MIT,
// vendored verbatim beside this file: the version the AI SDK itself reads streams with).
import { createParser } from "./eventsource-parser.js";

const conversation = document.querySelector("[data-role=conversation]");
const form = document.querySelector("[data-role=composer]");
const prompt = form.querySelector("textarea[name=prompt]");
const sendButton = form.querySelector("button[data-action=send]");
const stopButton = form.querySelector("button[data-action=stop]");
const backendLabel = document.querySelector("[data-role=backend]");

const chatId = newId();
const messages = []; // the UIMessages so far, sent back whole with every turn
let controller = null;

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

fetch("api/info")
  .then((response) => response.json())
  .then((info) => {
    const offline = info.backend === "offline";
    backendLabel.textContent = (offline ? "offline backend" : "Cohere") + " · " + info.model;
    backendLabel.dataset.backend = info.backend;
    backendLabel.classList.toggle("offline", offline);
  })
  .catch(() => { backendLabel.textContent = "backend unknown"; });

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => { if (controller) controller.abort(); });

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = prompt.value.trim();
  if (!text || controller) return;
  prompt.value = "";
  send(text);
});

async function send(text) {
  const user = { id: newId(), role: "user", parts: [{ type: "text", text }] };
  messages.push(user);
  conversation.append(element("div", { "data-role": "user" }, text));
  const reply = new Reply();
  controller = new AbortController();
  sendButton.disabled = true;
  stopButton.disabled = false;
  try {
    const response = await fetch("api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: chatId, messages, trigger: "submit-message" }),
      signal: controller.signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error || "HTTP " + response.status);
    }
    for await (const chunk of uiChunks(response.body)) reply.chunk(chunk);
    reply.end(reply.state === "streaming" ? "done" : reply.state);
  } catch (error) {
    if (error.name === "AbortError") reply.end("stopped");
    else { reply.fail(error.message); reply.end("error"); }
  } finally {
    messages.push(reply.message);
    controller = null;
    sendButton.disabled = false;
    stopButton.disabled = true;
    prompt.focus();
  }
}

// The UI message stream's chunks: the data of each server-sent event, ended by a `[DONE]`
// event; comments (`: keep-alive`) carry no event. A chunk that is not JSON ends the reply
// with an error rather than being skipped.
async function* uiChunks(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const ready = [];
  let finished = false;
  const parser = createParser({
    onEvent(event) {
      if (finished) return;
      if (event.data === "[DONE]") finished = true;
      else ready.push(JSON.parse(event.data));
    },
  });
  try {
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
      yield* ready.splice(0);
    }
    yield* ready.splice(0);
  } finally {
    reader.cancel().catch(() => {});
  }
}

// One assistant reply: its element, and the UIMessage it adds up to.
class Reply {
  constructor() {
    this.message = { id: newId(), role: "assistant", parts: [] };
    this.node = element("div", { "data-role": "assistant", "data-state": "streaming" });
    this.body = element("div", { class: "body" });
    this.sourceList = element("ol", { class: "sources", "data-role": "sources" });
    this.footer = element("footer", { class: "stats", "data-role": "stats" });
    this.node.append(this.body, this.sourceList, this.footer);
    conversation.append(this.node);
    this.state = "streaming";
    this.parts = new Map(); // part id → {part, node, citations}
    this.tools = new Map(); // toolCallId → {part, node, args}
    this.sources = new Map(); // sourceId → number
    this.sent = performance.now();
    this.firstToken = null;
    this.finished = null;
    this.metadata = null;
    this.node.scrollIntoView({ block: "end" });
  }

  chunk(chunk) {
    switch (chunk.type) {
      case "start":
        if (chunk.messageId) this.message.id = chunk.messageId;
        break;
      case "start-step":
        this.message.parts.push({ type: "step-start" });
        break;
      case "text-start":
      case "reasoning-start":
        this.startPart(chunk);
        break;
      case "text-delta":
      case "reasoning-delta":
        this.delta(chunk);
        break;
      case "tool-input-start":
        this.startTool(chunk);
        break;
      case "tool-input-delta":
        this.toolDelta(chunk);
        break;
      case "tool-input-available":
      case "tool-input-error":
        this.toolInput(chunk);
        break;
      case "source-document":
      case "source-url":
        this.source(chunk);
        break;
      case "data-citation":
        this.message.parts.push({ type: chunk.type, id: chunk.id, data: chunk.data });
        this.cite(chunk.data);
        break;
      case "finish":
        this.finished = performance.now();
        this.metadata = chunk.messageMetadata || { finishReason: chunk.finishReason };
        this.message.metadata = this.metadata;
        break;
      case "error":
        this.fail(chunk.errorText);
        this.state = "error";
        break;
      default:
        break; // text-end, reasoning-end, finish-step, and chunks this page does not show
    }
    this.node.scrollIntoView({ block: "end" });
  }

  startPart(chunk) {
    const kind = chunk.type === "text-start" ? "text" : "reasoning";
    const part = { type: kind, text: "" };
    if (chunk.providerMetadata) part.providerMetadata = chunk.providerMetadata;
    let node;
    if (kind === "reasoning") {
      const details = element("details", { class: "thinking", "data-role": "thinking" });
      details.append(element("summary", {}, "Thinking"));
      node = element("div");
      details.append(node);
      this.body.append(details);
    } else {
      const plan = chunk.id === "tool-plan";
      node = element("div", { class: plan ? "plan" : "text", "data-part": chunk.id });
      this.body.append(node);
    }
    this.message.parts.push(part);
    this.parts.set(chunk.id, { part, node, citations: [] });
  }

  delta(chunk) {
    if (!this.parts.has(chunk.id)) {
      this.startPart({ type: chunk.type.replace("-delta", "-start"), id: chunk.id });
    }
    if (this.firstToken === null) this.firstToken = performance.now();
    const entry = this.parts.get(chunk.id);
    entry.part.text += chunk.delta;
    entry.node.append(document.createTextNode(chunk.delta));
  }

  startTool(chunk) {
    const node = element("div", {
      class: "tool", "data-role": "tool-call", "data-tool-call-id": chunk.toolCallId,
    });
    const args = element("code", { "data-role": "tool-input" });
    node.append(element("strong", {}, chunk.toolName + " "), args);
    this.body.append(node);
    const part = {
      type: "tool-" + chunk.toolName, toolCallId: chunk.toolCallId,
      state: "input-streaming", input: undefined,
    };
    this.message.parts.push(part);
    this.tools.set(chunk.toolCallId, { part, node, args });
  }

  toolDelta(chunk) {
    const tool = this.tools.get(chunk.toolCallId);
    if (tool) tool.args.append(document.createTextNode(chunk.inputTextDelta));
  }

  toolInput(chunk) {
    if (!this.tools.has(chunk.toolCallId)) this.startTool(chunk);
    const tool = this.tools.get(chunk.toolCallId);
    tool.part.input = chunk.input;
    if (chunk.type === "tool-input-error") {
      tool.part.state = "output-error";
      tool.part.errorText = chunk.errorText;
      tool.node.append(element("div", { class: "error" }, chunk.errorText));
    } else {
      tool.part.state = "input-available";
      tool.args.textContent = JSON.stringify(chunk.input, null, 2);
      tool.node.dataset.state = "input-available";
    }
  }

  source(chunk) {
    if (this.sources.has(chunk.sourceId)) return;
    const number = this.sources.size + 1;
    this.sources.set(chunk.sourceId, number);
    this.message.parts.push(Object.assign({}, chunk));
    const item = element("li", { "data-source-id": chunk.sourceId });
    const title = chunk.title || chunk.filename || chunk.sourceId;
    if (chunk.type === "source-url" && isWebUrl(chunk.url)) {
      const link = element("a", { href: chunk.url, rel: "noopener noreferrer" }, title);
      item.append(link);
    } else {
      item.textContent = title;
    }
    this.sourceList.append(item);
  }

  // A citation's start and end count Unicode code points over its text part (Cohere's
  // offsets), so the part is re-rendered from its whole text: plain runs, then <mark>s.
  cite(data) {
    let entry;
    if (data.type === "PLAN") entry = this.parts.get("tool-plan");
    else entry = this.parts.get("text-" + (data.contentIndex ?? 0)) || this.lastText();
    if (!entry || typeof data.start !== "number" || typeof data.end !== "number") return;
    const numbers = (data.sources || []).map((id) => this.sources.get(id)).filter(Boolean);
    entry.citations.push({ start: data.start, end: data.end, numbers });
    entry.citations.sort((a, b) => a.start - b.start);
    const points = Array.from(entry.part.text);
    const nodes = [];
    let at = 0;
    for (const citation of entry.citations) {
      if (citation.start < at || citation.end <= citation.start) continue; // overlaps
      nodes.push(document.createTextNode(points.slice(at, citation.start).join("")));
      const mark = element("mark", {}, points.slice(citation.start, citation.end).join(""));
      mark.dataset.start = citation.start;
      mark.dataset.end = citation.end;
      // The source numbers go in an attribute that CSS shows: the reply's text stays its text.
      if (citation.numbers.length) mark.dataset.sources = citation.numbers.join(",");
      nodes.push(mark);
      at = citation.end;
    }
    nodes.push(document.createTextNode(points.slice(at).join("")));
    entry.node.replaceChildren(...nodes);
  }

  lastText() {
    let last = null;
    for (const [id, entry] of this.parts) if (id.startsWith("text-")) last = entry;
    return last;
  }

  fail(message) {
    this.body.append(element("div", { class: "error", "data-role": "error" }, message));
  }

  end(state) {
    this.state = state;
    this.node.dataset.state = state;
    const facts = [];
    const metadata = this.metadata || {};
    if (state === "stopped") facts.push("stopped");
    if (metadata.finishReason) facts.push("finish: " + metadata.finishReason);
    const tokens = outputTokens(metadata.usage);
    const input = inputTokens(metadata.usage);
    if (input !== null || tokens !== null) {
      facts.push("tokens: " + (input ?? "?") + " in, " + (tokens ?? "?") + " out");
    }
    if (this.firstToken !== null) {
      facts.push("first token: " + Math.round(this.firstToken - this.sent) + " ms");
      const seconds = ((this.finished ?? performance.now()) - this.firstToken) / 1000;
      if (tokens && seconds > 0) facts.push((tokens / seconds).toFixed(1) + " tokens/s");
    }
    this.footer.textContent = facts.join(" · ");
  }
}

function outputTokens(usage) {
  if (!usage) return null;
  return usage.tokens?.output_tokens ?? usage.billed_units?.output_tokens ?? null;
}

function inputTokens(usage) {
  if (!usage) return null;
  return usage.tokens?.input_tokens ?? usage.billed_units?.input_tokens ?? null;
}

function isWebUrl(url) {
  try {
    return ["http:", "https:"].includes(new URL(url).protocol);
  } catch {
    return false;
  }
}
