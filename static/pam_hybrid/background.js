// An answer left streaming in a conversation the user switched away from. The socket keeps following it, so the
// server keeps it running; its frames are not drawn, only counted, until it ends or the user comes back to it (it is
// then resumed from its start, in place of its saved row, as after a reload). Pure transitions on a Step.
"use strict";

import * as flow from "./flow.js";
import { refresh } from "./listing.js";

/** Leave the answer in flight to stream on while another conversation shows. A question not yet sent is taken back. */
export function park(t) {
  const { phase, record } = t.state;
  if (phase === "idle") {
    return;
  }
  if (!record.sent) {
    flow.stop(t); // it never left the page: back into the composer
    return;
  }
  t.set({ background: { ...record } });
  flow.finish(t);
}

/** The parked answer's record, if it belongs to `conversationId` (to resume it there), else null. */
export function parkedIn(state, conversationId) {
  const { background } = state;
  return background !== null && background.conversationId === conversationId ? background : null;
}

/** A numbered frame while an answer is parked: it is the parked answer's (the socket follows nothing else). True when
 * taken here. */
export function frameIn(t, chunk, seq) {
  const { background } = t.state;
  if (background === null || seq === null) {
    return false;
  }
  if (seq <= background.lastSeq) {
    return true;
  }
  const metadata = chunk.metadata || {};
  const next = { ...background, lastSeq: seq };
  if (chunk.chunk_type === "start") {
    next.messageId = metadata.message_id || next.messageId;
    next.conversationId = metadata.conversation_id || next.conversationId;
    next.started = true;
  }
  if (chunk.chunk_type === "end" || chunk.chunk_type === "error") {
    ended(t);
  } else {
    t.set({ background: next });
    if (chunk.chunk_type === "start") {
      refresh(t); // a new conversation: the sidebar lists it
    }
  }
  return true;
}

/** The parked answer ended: a message held back meanwhile can go now. */
function ended(t) {
  t.set({ background: null });
  refresh(t);
  flow.flush(t);
}

/** A new socket: follow the parked answer again (the old socket's close left it waiting for a resume). */
export function reopened(t) {
  const { background } = t.state;
  if (background === null) {
    return;
  }
  const frame = background.messageId
    ? { type: "resume", message_id: background.messageId, last_seq: background.lastSeq }
    : background.frame;
  if (frame) {
    t.emit({ type: "send", frame });
  }
}
