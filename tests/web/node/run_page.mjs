// Usage: node run_page.mjs <base url> <prompt> [<prompt> ...]
// With STOP_AFTER_FIRST_TOKEN=1 in the environment, the Stop button is clicked as soon as each
// reply has some text.
// Runs streamkit's chat.js (the page of `streamkit serve`) against a live server with a
// minimal DOM of its own (no browser, no dependencies): types each prompt, presses Enter,
// waits for the reply to end, then prints the conversation as JSON, one node per element:
// {tag, attributes, children}, text nodes as strings. Markup in a reply stays a string.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const [base, ...prompts] = process.argv.slice(2);

class Text {
  constructor(data) { this.data = String(data); }
  get textContent() { return this.data; }
}

class Element {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.attributes = {};
    this.children = [];
    this.listeners = {};
    this.disabled = false;
    this.value = "";
    const element = this;
    this.dataset = new Proxy({}, {
      get: (_, key) => element.attributes["data-" + kebab(key)],
      set: (_, key, value) => { element.attributes["data-" + kebab(key)] = String(value); return true; },
    });
    this.classList = {
      toggle: (name, on) => {
        const names = new Set((element.attributes.class || "").split(" ").filter(Boolean));
        if (on) names.add(name); else names.delete(name);
        element.attributes.class = [...names].join(" ");
      },
    };
  }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  set title(value) { this.attributes.title = String(value); }
  set href(value) { this.attributes.href = String(value); }
  append(...nodes) { this.children.push(...nodes.map((n) => (typeof n === "string" ? new Text(n) : n))); }
  replaceChildren(...nodes) { this.children = []; this.append(...nodes); }
  get textContent() { return this.children.map((child) => child.textContent).join(""); }
  set textContent(value) { this.children = [new Text(value)]; }
  addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
  dispatch(type, event) { for (const listener of this.listeners[type] || []) listener(event); }
  querySelector(selector) { return selectors[selector]; }
  scrollIntoView() {}
  focus() {}
  requestSubmit() { this.dispatch("submit", { preventDefault() {} }); }
}

function kebab(key) { return key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()); }

const conversation = new Element("main");
const form = new Element("form");
const prompt = new Element("textarea");
const send = new Element("button");
const stop = new Element("button");
const backend = new Element("span");
const selectors = {
  "[data-role=conversation]": conversation,
  "[data-role=composer]": form,
  "textarea[name=prompt]": prompt,
  "button[data-action=send]": send,
  "button[data-action=stop]": stop,
  "[data-role=backend]": backend,
};
const document = {
  querySelector: (selector) => selectors[selector],
  createElement: (tag) => new Element(tag),
  createTextNode: (data) => new Text(data),
};
const context = {
  document,
  window: {},
  crypto: globalThis.crypto,
  fetch: (url, options) => fetch(new URL(url, base), options),
  performance,
  AbortController,
  TextDecoder,
  Uint8Array,
  URL,
  console,
};
context.window = context;
vm.runInNewContext(readFileSync(new URL("../../../streamkit/web/static/chat.js", import.meta.url), "utf8"), context);

function tree(node) {
  if (node instanceof Text) return node.data;
  return { tag: node.tagName.toLowerCase(), attributes: node.attributes, children: node.children.map(tree) };
}

async function until(condition) {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error("timed out");
}

await until(() => backend.attributes["data-backend"] !== undefined);
for (const [index, text] of prompts.entries()) {
  prompt.value = text;
  prompt.dispatch("keydown", { key: "Enter", shiftKey: false, isComposing: false, preventDefault() {} });
  const replies = () => conversation.children.filter((c) => c.attributes["data-role"] === "assistant");
  if (process.env.STOP_AFTER_FIRST_TOKEN) {
    await until(() => replies().length === index + 1 && replies()[index].textContent.length > 0);
    stop.dispatch("click", {});
  }
  await until(() => replies().length === index + 1 && replies()[index].attributes["data-state"] !== "streaming" && !send.disabled);
}
process.stdout.write(JSON.stringify({ backend: tree(backend), conversation: tree(conversation) }) + "\n");
