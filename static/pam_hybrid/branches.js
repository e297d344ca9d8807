// Versions of a conversation: regenerate an answer (on its route or the stronger one), edit a question and re-run
// from there, Retry as a new version of a failed answer, and switching between versions. Pure transitions on a Step.
"use strict";

import { newBubble } from "./bubble.js";
import { branch } from "./conversation.js";
import { flush, follow, submit } from "./flow.js";
import { newRecord } from "./inflight.js";

const ROUTES = new Set(["auto", "simple", "complex"]);

function ready(state) {
  return state.phase === "idle" && !state.socket.authFailed && state.conversationId !== null;
}

/** A new version of the answer `messageId`: it streams in that answer's place. */
export function regenerate(t, { messageId, route, clientMsgId, userText = "" }) {
  if (!ready(t.state) || !messageId) {
    return;
  }
  const chosen = ROUTES.has(route) ? route : "auto";
  const frame = { type: "regenerate", message_id: messageId, route: chosen, client_msg_id: clientMsgId };
  t.set({ answer: { ...newBubble(t.key()), replaces: messageId }, scroll: t.state.scroll + 1 });
  follow(t, newRecord({ frame, userText, route: chosen, conversationId: t.state.conversationId, kind: "regenerate" }));
  flush(t);
}

/** A new version of the question `messageId`, asked again: it and what followed give way to the new one. */
export function edit(t, { messageId, content, route, clientMsgId }) {
  if (!ready(t.state) || !content.trim() || content.length > t.state.maxChars) {
    return;
  }
  submit(t, { content, route, clientMsgId, editOf: messageId });
  t.set({ question: { ...t.state.question, replaces: messageId } });
}

/** Retry a failed answer: a new version of it once the server named it; else (nothing was saved) its question again. */
export function retry(t, { text, route, clientMsgId, messageId }) {
  if (t.state.phase !== "idle") {
    return;
  }
  if (messageId && t.state.conversationId !== null) {
    regenerate(t, { messageId, route, clientMsgId, userText: text });
  } else if (text) {
    submit(t, { content: text, route, clientMsgId });
  }
}

/** Show the version `messageId` of a message (its branch, to that branch's newest answer). */
export function version(t, { messageId }) {
  branch(t, messageId);
}
