// Message elements. Model output only ever enters the page as text nodes, never as HTML.
"use strict";

import { formatCost, formatMs } from "./format.js";
import { copyText, renderText } from "./text.js";

const AVATAR_URL = new URL("./favicon.svg", import.meta.url).href;
const LENGTH_REASONS = new Set(["length", "max_tokens"]);
const STOP_REASONS = new Set(["cancelled", "canceled"]);

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, value);
  }
  return node;
}

function messageShell(role, status) {
  return el("li", `message message--${role}`, { "data-testid": "message", "data-role": role, "data-status": status });
}

/** A finished user message. */
export function renderUserMessage(text) {
  const item = messageShell("user", "complete");
  const body = el("div", "message-body");
  const content = el("div", "message-content", { "data-testid": "message-content" });
  const textBox = el("div", "message-text");
  textBox.textContent = text;
  content.append(textBox);
  body.append(content);
  item.append(body);
  return item;
}

function stringify(value) {
  if (value === undefined || value === null || value === "") {
    return "";
  }
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function metaPart(text, className = "") {
  const part = el("span", className);
  part.textContent = text;
  return part;
}

/** An assistant answer: streams text in, then becomes complete, stopped or failed. */
export class AssistantMessage {
  constructor() {
    this.element = messageShell("assistant", "streaming");
    const avatar = el("img", "message-avatar", { src: AVATAR_URL, alt: "", width: "30", height: "30" });
    this.body = el("div", "message-body");
    const header = el("div", "message-header");
    this.modelChip = el("span", "model-chip", { "data-testid": "message-model", hidden: "" });
    header.append(metaPart("PAM"), this.modelChip);
    this.content = el("div", "message-content", { "data-testid": "message-content" });
    this.body.append(header, this.content);
    this.element.append(avatar, this.body);
    this.textNode = null;
    this.parts = [];
  }

  get status() {
    return this.element.dataset.status;
  }

  setModel(model) {
    if (model) {
      this.modelChip.textContent = model;
      this.modelChip.hidden = false;
    }
  }

  setMessageId(messageId) {
    if (messageId) {
      this.element.dataset.messageId = messageId;
    }
  }

  appendText(text) {
    if (!text) {
      return;
    }
    if (this.textNode === null) {
      const box = el("div", "message-text");
      this.textNode = document.createTextNode("");
      box.append(this.textNode);
      this.content.append(box);
    }
    this.textNode.appendData(text);
    this.parts.push(text);
  }

  /** The answer's text as the model wrote it. */
  text() {
    return this.parts.join("");
  }

  /** A collapsed block for a tool call or its result; text after it starts a new paragraph. */
  addTool(kind, content, metadata) {
    const block = el("details", "tool-block", { "data-testid": "tool-block", "data-tool-kind": kind });
    const summary = el("summary");
    const name = metadata.name || "tool";
    summary.textContent = kind === "tool_call" ? `Used tool: ${name}` : `Result from ${name}`;
    const detail = kind === "tool_call" ? stringify(metadata.arguments) : stringify(metadata.result);
    const pre = el("pre");
    pre.textContent = detail || content || "(empty)";
    block.append(summary, pre);
    this.content.append(block);
    this.textNode = null;
  }

  /** The `end` frame: final status, notes and the meta line. */
  complete(meta) {
    this.setModel(meta.model);
    this.setMessageId(meta.message_id);
    if (STOP_REASONS.has(meta.finish_reason)) {
      this.finish("partial", "Stopped.");
    } else if (LENGTH_REASONS.has(meta.finish_reason)) {
      this.finish("complete", "The answer was cut short by the length limit.");
    } else if (meta.status === "partial") {
      this.finish("partial", `The answer ended early (${meta.finish_reason || "no reason given"}).`);
    } else {
      this.finish("complete", "");
    }
    this.addMeta(meta.model, liveMetaParts(meta));
  }

  /** An error: keep the partial text, mark it interrupted, show the user-readable message. */
  fail(message, metadata = {}) {
    this.setMessageId(metadata.message_id);
    const interrupted = this.text() ? " The answer above was interrupted." : "";
    this.finish("error", `${message || "Something went wrong."}${interrupted}`);
  }

  stop() {
    this.finish("partial", "Stopped.");
  }

  finish(status, note) {
    this.element.dataset.status = status;
    this.textNode = null;
    for (const box of this.content.querySelectorAll(":scope > .message-text")) {
      if (box.textContent.includes("```")) {
        box.replaceWith(...renderText(box.textContent));
      }
    }
    if (note) {
      const noteEl = el("p", "message-note", { "data-testid": "message-note", role: status === "error" ? "alert" : "note" });
      noteEl.textContent = note;
      this.body.append(noteEl);
    }
  }

  addMeta(model, parts) {
    const line = el("p", "message-meta", { "data-testid": "message-meta", "data-model": model || "" });
    if (model) {
      line.append(metaPart(model, "meta-model"));
    }
    for (const part of parts) {
      line.append(metaPart(part));
    }
    line.append(this.copyButton());
    this.body.append(line);
  }

  copyButton() {
    const button = el("button", "copy-button", { type: "button", "data-testid": "copy-button" });
    button.textContent = "Copy";
    button.addEventListener("click", () => copyText(button, this.text()));
    return button;
  }
}

function liveMetaParts(meta) {
  const parts = [formatCost(meta.cost_usd)];
  const ttft = formatMs(meta.ttft_ms);
  if (ttft) {
    parts.push(`first token ${ttft}`);
  }
  if (Number.isFinite(meta.input_tokens) && Number.isFinite(meta.output_tokens)) {
    parts.push(`${meta.input_tokens} in · ${meta.output_tokens} out tokens`);
  }
  return parts;
}

/** An element for one stored message from the history API. */
export function renderStoredMessage(record) {
  if (record.role === "user") {
    return renderUserMessage(record.content);
  }
  const message = new AssistantMessage();
  message.setModel(record.model);
  message.setMessageId(record.id);
  message.appendText(record.content);
  if (record.status === "error") {
    message.fail(record.error || "This answer failed.");
  } else if (record.status === "partial") {
    message.finish("partial", "This answer was interrupted before it finished.");
  } else {
    message.finish("complete", "");
  }
  message.addMeta(record.model, record.route ? [`${record.route} route`] : []);
  return message.element;
}
