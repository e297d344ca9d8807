// The answer flow, idle → queued → sent → streaming (→ stopping) → idle, and what each socket owes it: the message
// frame until `start` names the answer, then a resume after the last frame shown. Pure transitions on a Step.
"use strict";

import { closed, ended, endedAsShown, newBubble } from "./bubble.js";
import { newRecord } from "./inflight.js";

const CANCEL_GRACE_MS = 5000;
// With no frame for this long, ask the history API whether the answer ended without us (its stream went on in
// another server process, say); while it is still streaming, keep waiting.
const STALL_CHECK_MS = 30000;
// A message refused by a server that is restarting goes again on the next socket; if this one is not closed by then
// (the server closes idle sockets as it drains), the refusal shows, with Retry.
const REFUSED_WAIT_MS = 5000;
const RETRYABLE_CODES = new Set(["provider_error", "not_found", "busy", "interrupted", "shutting_down"]);
const LOST_TEXT = "The connection was lost.";
const GAVE_UP_TEXT = "The connection was lost. Reload the page to pick the answer up again.";
const NOT_FOUND_TEXT = "This answer could not be picked up again: it is no longer available.";

export function canSend(state, content) {
  return (
    state.phase === "idle" && !state.socket.authFailed && content.trim() !== "" && content.length <= state.maxChars
  );
}

/** Ask: the question shows at once and goes out now, or as soon as the socket is back (queued meanwhile). */
export function submit(t, { content, route, clientMsgId, editOf = null }) {
  const { conversationId, answer } = t.state;
  const frame = {
    type: "message",
    content,
    conversation_id: conversationId,
    stream: true,
    route,
    client_msg_id: clientMsgId,
  };
  if (editOf) {
    frame.edit_of = editOf; // a new version of that message: the answer after it is re-run
  }
  const question = { key: t.key(), text: content, status: "queued", dropsRetries: true };
  t.set({ question, answer: answer && closed(answer), scroll: t.state.scroll + 1 });
  follow(t, newRecord({ frame, userText: content, route, conversationId, kind: editOf ? "edit" : "message" }));
  flush(t);
}

/** Follow `record` from now on (its question, if shown, is the caller's to set). */
export function follow(t, record) {
  t.set({ phase: "queued", record, turn: t.state.turn + 1, sentOn: -1 });
  t.emit({ type: "save", record });
}

/** Send what the answer needs on this socket, once per socket; then a stop asked for meanwhile. */
export function flush(t) {
  const { phase, record, sentOn, socket, question } = t.state;
  if (phase === "idle" || record === null || sentOn === socket.connection || !socket.open) {
    return;
  }
  if (t.state.background !== null && !record.messageId) {
    return; // the socket follows a parked answer (background.js): a new message would be refused until it ends
  }
  const frame = record.messageId
    ? { type: "resume", message_id: record.messageId, last_seq: record.lastSeq }
    : record.frame;
  if (!frame) {
    return;
  }
  if (t.state.background !== null) {
    // The socket follows the parked answer until the server reads this resume: its frames wait for our `start`.
    t.set({ background: null, record: { ...t.state.record, awaitStart: true } });
  }
  t.emit({ type: "send", frame });
  t.set({ sentOn: socket.connection, phase: phase === "stopping" ? phase : "sent" });
  if (!t.state.record.sent) {
    t.set({ record: { ...t.state.record, sent: true } });
    t.emit({ type: "save", record: t.state.record });
  }
  armStallCheck(t);
  if (question !== null && question.status === "queued") {
    t.set({ question: { ...question, status: "complete" } });
  }
  if (phase === "stopping") {
    sendCancel(t);
  }
}

/** Whether the server has the answer's frame on the socket open now. */
function sentHere(state) {
  return state.record !== null && state.sentOn === state.socket.connection && state.socket.open;
}

/** The user pressed Stop (or Escape). */
export function stop(t) {
  const { phase, record } = t.state;
  if (phase === "idle") {
    return;
  }
  if (!record.messageId && !sentHere(t.state)) {
    if (!record.sent) {
      unsend(t);
    } else {
      // Sent, never acknowledged (or refused), and not on this socket: nothing to say stop to; the server drops an
      // answer nobody follows.
      endAsShown(t, { kind: "stop", note: "Stopped." });
      finish(t);
    }
    return;
  }
  t.set({ phase: "stopping" });
  if (sentHere(t.state)) {
    sendCancel(t); // otherwise it follows the resume once the socket is back
  }
}

function sendCancel(t) {
  t.emit({ type: "send", frame: { type: "cancel" } });
  // If the server never confirms (it normally answers with `end` or `error`), stop waiting anyway.
  t.arm("cancelGrace", CANCEL_GRACE_MS);
}

/** Take back a question that never left the page: it goes back into the composer. */
function unsend(t) {
  const { record, question, draft } = t.state;
  if (question !== null && question.status === "queued") {
    t.set({ question: { ...question, status: "removed" } });
  }
  if (!draft) {
    t.set({ draft: record.userText });
    t.emit({ type: "composer", text: record.userText });
  }
  finish(t);
}

/** Back to idle; with `keepStored`, a reload still picks the answer up. */
export function finish(t, { keepStored = false } = {}) {
  const { answer, record } = t.state;
  t.set({ phase: "idle", record: null, answer: answer && closed(answer) });
  t.disarm("stallCheck", "cancelGrace", "refusedWait");
  if (!keepStored) {
    t.emit({ type: "forget" });
  }
  if (record !== null && (record.kind === "edit" || record.kind === "regenerate")) {
    redraw(t, record.conversationId);
  }
}

/** A new version was made (or tried): the conversation is drawn again from the server, with its versions. */
function redraw(t, conversationId) {
  if (!conversationId) {
    return;
  }
  const token = t.state.loadToken + 1;
  t.set({ loadToken: token });
  t.emit({ type: "fetch", purpose: "open", conversationId, token, stored: null, via: "refresh" });
}

export function armStallCheck(t) {
  t.arm("stallCheck", STALL_CHECK_MS);
}

/** The answer bubble to add to: the open one, or a new one. */
export function openAnswer(t) {
  const { answer } = t.state;
  return answer !== null && !answer.closed ? answer : newBubble(t.key());
}

export function endAnswer(t, ending) {
  t.set({ answer: ended(openAnswer(t), ending) });
}

export function endAsShown(t, ending) {
  t.set({ answer: endedAsShown(openAnswer(t), ending) });
}

/** A failure outside any answer (a rejected frame, a conversation that would not load): shown on its own. */
export function notice(t, text, metadata = {}) {
  endAnswer(t, { kind: "fail", text, metadata });
  t.set({ answer: closed(t.state.answer) });
}

/** What Retry does: a new version of the answer when the server named it (else its question again), on its route. */
export function retryOf(record) {
  if (record === null || !(record.userText || record.messageId)) {
    return null;
  }
  return { text: record.userText, route: record.route, messageId: record.messageId || null };
}

export function showError(t, content, metadata) {
  if (metadata.code === "cancelled") {
    endAsShown(t, { kind: "stop", note: content || "Stopped." }); // a stop that came before the answer began
  } else {
    const retryable = !metadata.code || RETRYABLE_CODES.has(metadata.code);
    const text = metadata.code === "not_found" ? NOT_FOUND_TEXT : content;
    endAsShown(t, { kind: "fail", text, metadata, retry: retryable ? retryOf(t.state.record) : null });
  }
  finishAnswer(t, metadata);
}

export function finishAnswer(t, metadata) {
  finish(t);
  adopt(t, metadata.conversation_id);
}

/** The answer belongs to this conversation; the sidebar learns of a new one (or of a finished answer). */
export function adopt(t, conversationId) {
  if (!conversationId) {
    return;
  }
  const isNew = conversationId !== t.state.conversationId;
  t.set({ conversationId });
  if (isNew) {
    t.emit({ type: "location", conversationId, mode: "replace" }); // the new chat's address, once it has one
  }
  if (isNew || t.state.phase === "idle") {
    const { query, token } = t.state.sidebar;
    t.emit({ type: "fetch", purpose: "sidebar", q: query, token });
  }
}

/** The server refused the message before taking it (it is restarting): send it again on the next socket, unless
 * this one is still open after a while. False when the answer had begun (the refusal is about something else). */
export function requeue(t, content, metadata) {
  const { phase, record, socket, turn } = t.state;
  if (record.messageId || record.started) {
    return false;
  }
  t.set({ sentOn: -1, phase: phase === "stopping" ? phase : "queued" });
  t.arm("refusedWait", REFUSED_WAIT_MS, { content, metadata, connection: socket.connection, turn });
  return true;
}

/** The socket dropped: the answer waits for the next one, unless it cannot be picked up again. */
export function dropped(t) {
  t.disarm("stallCheck");
  const { phase, record } = t.state;
  if (phase === "idle") {
    return;
  }
  if (record.messageId || !record.started) {
    t.set({ phase: phase === "stopping" ? phase : "queued" }); // resumed (or its message sent again) once back
    return;
  }
  endAnswer(t, { kind: "fail", text: LOST_TEXT, metadata: {} }); // an answer without an id cannot be resumed
  finish(t);
}

/** The socket ran out of attempts: a question not yet answered stays queued; an answer shows the loss. */
export function gaveUp(t) {
  const { phase, record, socket } = t.state;
  if (phase === "idle" || socket.authFailed || (!record.messageId && !record.started)) {
    return;
  }
  endAsShown(t, { kind: "fail", text: GAVE_UP_TEXT, metadata: {} });
  finish(t, { keepStored: Boolean(record.messageId) }); // a reload resumes it
}

export const TIMERS = {
  cancelGrace: (t) => {
    if (t.state.phase !== "idle") {
      endAsShown(t, { kind: "stop", note: "Stopped." });
      finish(t);
    }
  },
  refusedWait: (t, { content, metadata, connection, turn }) => {
    if (t.state.phase !== "idle" && t.state.turn === turn && t.state.socket.connection === connection) {
      showError(t, content, metadata);
    }
  },
  // Nothing arrived for a long while: ask the history API whether the saved answer has ended (see conversation.js).
  stallCheck: (t) => {
    const { phase, record, turn } = t.state;
    if (phase !== "idle" && record.messageId && record.conversationId) {
      t.emit({ type: "fetch", purpose: "stall", conversationId: record.conversationId, turn });
    }
  },
};
