// The route toggle's cost preview: once typing pauses (DELAY_MS), what the message would cost on each route, as the
// server estimates it (POST api/route-preview); never a request per keystroke, and a late reply never overwrites a
// newer one. Kept out of the page's state: it is a hint beside the toggle, not part of the conversation.
"use strict";

const DELAY_MS = 300;
const LABELS = { simple: "Simple", complex: "Complex" };

/** "$0.0004", "$0.006", "<$0.0001": two significant digits, never exponent notation. */
export function dollars(text) {
  const value = Number(text);
  if (!Number.isFinite(value)) {
    return null;
  }
  if (value < 0.0001) {
    return "<$0.0001";
  }
  return `$${parseFloat(value.toPrecision(2))}`;
}

function routeText(row) {
  const label = LABELS[row.route] || row.route;
  const cost = row.cost_usd === null ? null : dollars(row.cost_usd);
  return cost === null ? `${label}: price unknown` : `${label} ~${cost}`;
}

function routeTitle(row) {
  return `${LABELS[row.route] || row.route} (${row.model}): about ${row.input_tokens} tokens in, `
    + `a typical ${row.output_tokens}-token answer`;
}

export class RoutePreview {
  /** element: where the preview shows; post(body): the server's reply ({ routes: [...] }) or a thrown error. */
  constructor(element, post, delayMs = DELAY_MS) {
    this.element = element;
    this.post = post;
    this.delayMs = delayMs;
    this.timer = null;
    this.asked = 0;
  }

  /** The message changed: preview it once typing pauses (an empty one hides the preview at once). */
  update(content, conversationId) {
    clearTimeout(this.timer);
    const asked = ++this.asked;
    if (!content.trim()) {
      this.hide();
      return;
    }
    this.timer = setTimeout(() => this.fetch(asked, content, conversationId), this.delayMs);
  }

  async fetch(asked, content, conversationId) {
    let reply;
    try {
      reply = await this.post({ content, conversation_id: conversationId || null });
    } catch {
      reply = null; // a preview is a hint: on any failure (limit, network, signed out) it just does not show
    }
    if (asked !== this.asked) {
      return; // the message changed meanwhile
    }
    if (!reply || !Array.isArray(reply.routes)) {
      this.hide();
      return;
    }
    this.element.textContent = reply.routes.map(routeText).join(" · ");
    this.element.title = `Estimated cost of sending this message. ${reply.routes.map(routeTitle).join("; ")}.`;
    this.element.hidden = false;
  }

  hide() {
    this.element.hidden = true;
    this.element.textContent = "";
  }
}
