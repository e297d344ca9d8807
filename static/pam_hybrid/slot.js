// Where the answer being streamed shows in the message list: an AssistantMessage kept in step with the answer bubble in
// state (bubble.js), appended on its first frame or, for an answer picked up again, in place of its saved checkpoint
// once the resumed stream shows at least as much (no flash of less text).
"use strict";

import { AssistantMessage } from "./messages.js";
import { renderCheckpoint } from "./transcript.js";

const BLANK = {
  key: null,
  model: null,
  route: null,
  routeReason: null,
  messageId: null,
  fallback: null,
  pieces: null,
  ending: null,
  swapped: false,
};

export class AnswerSlot {
  /** append(element) puts a new answer at the end of the list; onRetry(text, route) is a Retry button's click. */
  constructor({ append, onRetry, onEnded = () => {} }) {
    this.append = append;
    this.onRetry = onRetry;
    this.onEnded = onEnded; // (message, bubble) once an answer streamed here has ended
    this.forget();
  }

  /** Leave the answer drawn last as it is: what follows draws another. */
  forget() {
    this.drawn = BLANK;
    this.message = null;
    this.checkpoint = null;
  }

  /** The element for a saved row still streaming, which `bubble` (the resumed answer) takes over. */
  resume(bubble, row) {
    this.drawn = bubble;
    this.message = new AssistantMessage();
    this.message.setModel(row.model);
    this.message.setMessageId(row.id);
    this.checkpoint = null;
    if (!row.content) {
      return this.message.element;
    }
    this.checkpoint = renderCheckpoint(row);
    return this.checkpoint.element;
  }

  /** Bring the page up to `bubble` (null: none); true when the answer grew or changed its place. */
  sync(bubble) {
    if (bubble === null) {
      this.forget();
      return false;
    }
    if (bubble === this.drawn) {
      return false;
    }
    if (bubble.key === this.drawn.key) {
      return this.update(bubble);
    }
    this.forget();
    if (bubble.resumed) {
      return false; // drawn with its history, through resume()
    }
    this.message = new AssistantMessage();
    this.append(this.message.element, bubble);
    this.update(bubble);
    return true;
  }

  update(bubble) {
    const before = this.drawn;
    const { message } = this;
    if (bubble.model !== before.model) {
      message.setModel(bubble.model);
    }
    if (bubble.route !== before.route) {
      message.setRoute(bubble.route);
    }
    if (bubble.routeReason !== before.routeReason) {
      message.setRouteReason(bubble.routeReason);
    }
    if (bubble.messageId !== before.messageId) {
      message.setMessageId(bubble.messageId);
    }
    if (bubble.fallback !== before.fallback) {
      message.setFallback(bubble.fallback);
    }
    let changed = this.drawPieces(bubble.pieces, before.pieces);
    if (bubble.ending !== null && before.ending === null) {
      this.drawEnding(bubble.ending);
      if (bubble.ending.on === "answer") {
        this.onEnded(message, bubble);
      }
      changed = true;
    }
    if (bubble.swapped && !before.swapped && this.checkpoint !== null) {
      message.markResumed();
      this.checkpoint.element.replaceWith(message.element);
      this.checkpoint = null;
      changed = true;
    }
    this.drawn = bubble;
    return changed;
  }

  /** What arrived since `upTo`, oldest first. */
  drawPieces(link, upTo) {
    const fresh = [];
    for (; link !== upTo && link !== null; link = link.prev) {
      fresh.push(link.piece);
    }
    for (const piece of fresh.reverse()) {
      if (piece.kind === "text") {
        this.message.appendText(piece.text);
      } else {
        this.message.addTool(piece.toolKind, piece.content, piece.metadata);
      }
    }
    return fresh.length > 0;
  }

  drawEnding({ kind, on, retry, ...ending }) {
    const target = on === "checkpoint" ? this.checkpoint : this.message;
    if (kind === "complete") {
      target.complete(ending.meta);
    } else if (kind === "fail") {
      target.fail(ending.text, ending.metadata);
    } else {
      target.stop(ending.note);
    }
    if (retry) {
      target.offerRetry(() => this.onRetry(retry.text, retry.route, retry.messageId));
    }
  }
}
