// The answer being streamed, as plain data: what it says, which model wrote it, how it ended, and the saved checkpoint
// it takes over from when it was picked up again. slot.js shows it; nothing here touches the page.
"use strict";

const LENGTH_REASONS = new Set(["length", "max_tokens"]);
const STOP_REASONS = new Set(["cancelled", "canceled"]);
const EARLY_END_NOTES = {
  interrupted: "The answer was interrupted before it finished.",
  disconnected: "The answer stopped because the connection was lost for too long.",
  shutdown: "The answer stopped because the server restarted.",
};

/** How an `end` frame closes an answer: its status, its note, and whether it ended early by itself (not stopped, not
 * cut by the length limit), which makes it worth a retry. */
export function endingOf(meta) {
  if (STOP_REASONS.has(meta.finish_reason)) {
    return { status: "partial", note: "Stopped.", retryable: false };
  }
  if (LENGTH_REASONS.has(meta.finish_reason)) {
    return { status: "complete", note: "The answer was cut short by the length limit.", retryable: false };
  }
  if (meta.status === "partial") {
    const reason = meta.finish_reason || "no reason given";
    return {
      status: "partial",
      note: EARLY_END_NOTES[meta.finish_reason] || `The answer ended early (${reason}).`,
      retryable: true,
    };
  }
  return { status: "complete", note: "", retryable: false };
}

/**
 * A new answer, appended to the list when first shown. `pieces` is what it received, newest first, as an immutable
 * chain ({ piece, prev }): a piece is { kind: "text", text } or { kind: "tool", toolKind, content, metadata }.
 * `chars` counts its text. `ending` is set once: { kind: "complete", meta } | { kind: "fail", text, metadata } |
 * { kind: "stop", note }, with `retry` ({ text, route } or null) and `on` ("answer", or "checkpoint" when it ended
 * before catching up with its checkpoint). A `closed` bubble is done with: the next frame starts a new one.
 */
export function newBubble(key) {
  return {
    key,
    resumed: false,
    closed: false,
    model: null,
    route: null,
    routeReason: null,
    messageId: null,
    fallback: null,
    pieces: null,
    chars: 0,
    checkpoint: null,
    swapped: false,
    ending: null,
  };
}

/** An answer picked up again from a saved row still streaming: it shows in the row's place, behind the row's saved
 * text (its checkpoint, { chars }) until the resumed stream shows at least as much: no flash of less text. */
export function resumedBubble(key, row) {
  return {
    ...newBubble(key),
    resumed: true,
    model: row.model || null,
    route: row.route || null,
    messageId: row.id || null,
    checkpoint: row.content ? { chars: row.content.length } : null,
  };
}

/** How an answer's route reads: "simple", or "auto → complex" when the classifier chose it (null: not known yet). */
export function routeLabel(requested, resolved) {
  if (!resolved) {
    return null;
  }
  return requested === "auto" && resolved !== "auto" ? `auto → ${resolved}` : resolved;
}

/** Model, route (and why: `routeReason`), message id and fallback as a frame names them; what a frame leaves out
 * stays as it was. */
export function named(bubble, { model, route, routeReason, messageId, fallback }) {
  return {
    ...bubble,
    model: model || bubble.model,
    route: route || bubble.route,
    routeReason: routeReason || bubble.routeReason,
    messageId: messageId || bubble.messageId,
    fallback: fallback && typeof fallback === "object" ? fallback : bubble.fallback,
  };
}

export function withText(bubble, text) {
  if (!text) {
    return bubble;
  }
  const pieces = { piece: { kind: "text", text }, prev: bubble.pieces };
  return { ...bubble, pieces, chars: bubble.chars + text.length };
}

export function withTool(bubble, toolKind, content, metadata) {
  return { ...bubble, pieces: { piece: { kind: "tool", toolKind, content, metadata }, prev: bubble.pieces } };
}

/** The text received so far. */
export function textOf(bubble) {
  const texts = [];
  for (let link = bubble.pieces; link !== null; link = link.prev) {
    if (link.piece.kind === "text") {
      texts.push(link.piece.text);
    }
  }
  return texts.reverse().join("");
}

/** End the answer itself (complete, or failed as a whole). */
export function ended(bubble, ending) {
  return { ...bubble, ending: { retry: null, ...ending, on: "answer" } };
}

/** End the answer as it shows now: its checkpoint if the resumed stream has not caught up with it yet (the stream
 * is then dropped), else the answer. */
export function endedAsShown(bubble, ending) {
  const { checkpoint } = bubble;
  if (checkpoint !== null && bubble.chars < checkpoint.chars) {
    return { ...bubble, checkpoint: null, ending: { retry: null, ...ending, on: "checkpoint" } };
  }
  return ended(bubble, ending);
}

/** Swap the resumed answer in for its checkpoint once it has caught up (or now, with `force`). */
export function caughtUp(bubble, force = false) {
  const { checkpoint } = bubble;
  if (checkpoint === null || (!force && bubble.chars < checkpoint.chars)) {
    return bubble;
  }
  return { ...bubble, checkpoint: null, swapped: true };
}

/** Done with: the next answer starts afresh. */
export function closed(bubble) {
  return bubble.closed ? bubble : { ...caughtUp(bubble, true), closed: true };
}
