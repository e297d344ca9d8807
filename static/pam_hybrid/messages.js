// Message elements. User text only ever enters the page as text nodes; answer text as markdown, rendered by
// markdown.js with raw HTML off and sanitised.
"use strict";

import { endingOf } from "./bubble.js";
import { formatCost, formatMs, providerLabel } from "./format.js";
import { copyText } from "./code.js";
import { MarkdownView } from "./markdown.js";

const AVATAR_URL = new URL("./favicon.svg", import.meta.url).href;
const BUDGET_NOTE = "Near today's spending limit: using the faster model. Pick the Complex route to override.";

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
    this.routeChip = el("span", "route-chip", { "data-testid": "message-route", hidden: "" });
    this.fallbackNote = el("span", "fallback-note", { "data-testid": "message-fallback", hidden: "" });
    header.append(metaPart("PAM"), this.modelChip, this.routeChip, this.fallbackNote);
    this.routeNote = el("p", "route-note", { "data-testid": "message-route-note", hidden: "" });
    this.content = el("div", "message-content", { "data-testid": "message-content" });
    this.body.append(header, this.routeNote, this.content);
    this.element.append(avatar, this.body);
    this.view = null; // the MarkdownView of the text since the last tool block
    this.parts = [];
    this.note = null;
  }

  get status() {
    return this.element.dataset.status;
  }

  setModel(model) {
    if (model) {
      this.model = model;
      this.modelChip.textContent = model;
      this.modelChip.hidden = false;
    }
  }

  /** The route that answers: "simple", or "auto → complex" when the classifier chose it. */
  setRoute(route) {
    if (route) {
      this.routeChip.textContent = route;
      this.routeChip.title = "Route";
      this.routeChip.hidden = false;
    }
  }

  /** Why the route, when the user should know: "budget" (auto took the simple route near the spending limit). Part
   * of the answer in the message log (a polite live region), so it is read once with it, never as an alert. */
  setRouteReason(reason) {
    if (reason === "budget") {
      this.routeNote.textContent = BUDGET_NOTE;
      this.routeNote.hidden = false;
    }
  }

  /** The gateway answered with another provider than the one first chosen: say so, briefly. */
  setFallback(fallback) {
    if (!fallback || typeof fallback !== "object") {
      return;
    }
    const from = providerLabel(fallback.from_provider);
    this.fallbackNote.textContent = from ? `(${from} unavailable)` : "(fallback)";
    const instead = fallback.from_model ? ` instead of ${fallback.from_model}` : "";
    const answeredBy = this.model ? `Answered by ${this.model}${instead}` : `Answered by another model${instead}`;
    this.fallbackNote.title = fallback.reason ? `${answeredBy}: ${fallback.reason}` : `${answeredBy}.`;
    this.fallbackNote.setAttribute("aria-label", this.fallbackNote.title);
    this.fallbackNote.dataset.fromProvider = fallback.from_provider || "";
    this.fallbackNote.hidden = false;
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
    if (this.view === null) {
      const box = el("div", "message-text markdown");
      this.content.append(box);
      this.view = new MarkdownView(box, () => box.dispatchEvent(new Event("pam:drawn", { bubbles: true })));
    }
    this.view.append(text);
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
    this.endText();
    this.content.append(block);
  }

  /** The `end` frame: final status, notes and the meta line. True when the answer ended early by itself (not stopped,
   * not cut by the length limit): worth a retry. */
  complete(meta) {
    this.setModel(meta.model);
    this.setFallback(meta.fallback);
    this.setMessageId(meta.message_id);
    const { status, note, retryable } = endingOf(meta);
    this.finish(status, note);
    this.addMeta(meta.model, liveMetaParts(meta));
    return retryable;
  }

  /** An error: keep the partial text, mark it interrupted, show the user-readable message. */
  fail(message, metadata = {}) {
    this.setMessageId(metadata.message_id);
    this.setModel(metadata.model);
    this.setFallback(metadata.fallback);
    const interrupted = this.text() ? " The answer above was interrupted." : "";
    this.finish("error", `${message || "Something went wrong."}${interrupted}`);
  }

  stop(note = "Stopped.") {
    this.finish("partial", note);
  }

  finish(status, note) {
    this.element.dataset.status = status;
    this.endText();
    if (note) {
      const role = status === "error" ? "alert" : "note";
      this.note = el("p", "message-note", { "data-testid": "message-note", role });
      this.note.textContent = note;
      this.body.append(this.note);
    }
  }

  /** The text so far is complete: drawn in full now; more text starts a new box. */
  endText() {
    if (this.view !== null) {
      this.view.finish();
      this.view = null;
    }
  }

  /** A Retry button under the note: `onRetry` sends the question again as a new message. */
  offerRetry(onRetry) {
    if (this.note === null) {
      this.finish(this.status, "This answer did not finish.");
    }
    const actions = el("div", "message-actions");
    const button = el("button", "btn btn-small retry-button", { type: "button", "data-testid": "retry-button" });
    button.textContent = "Retry";
    button.addEventListener("click", () => onRetry());
    actions.append(button);
    this.note.after(actions);
  }

  /** Shown in place of an earlier element without the entry animation (a resumed answer taking over). */
  markResumed() {
    this.element.classList.add("message--resumed");
  }

  addMeta(model, parts) {
    const line = el("p", "message-meta", { "data-testid": "message-meta", "data-model": model || "" });
    // Model and route move here from the header, so each shows once.
    if (model) {
      line.append(metaPart(model, "meta-model"));
    }
    if (!this.routeChip.hidden) {
      line.append(metaPart(this.routeChip.textContent, "meta-route"));
    }
    this.modelChip.hidden = true;
    this.routeChip.hidden = true;
    for (const part of parts) {
      line.append(metaPart(part));
    }
    line.append(this.copyButton());
    this.body.append(line);
  }

  copyButton() {
    const button = el("button", "copy-button", {
      type: "button",
      "data-testid": "copy-button",
      "aria-label": "Copy the answer as markdown",
    });
    button.textContent = "Copy";
    button.addEventListener("click", () => copyText(button, this.text()));
    return button;
  }
}

/** The usage part of the meta line (cost, first token, tokens): for an `end` frame or a saved answer's usage. */
export function liveMetaParts(meta) {
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
