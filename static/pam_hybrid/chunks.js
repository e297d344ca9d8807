// Frames from the socket, one chunk_type at a time: numbered frames already shown are dropped, the rest move the answer
// bubble and the answer flow on. Pure transitions on a Step.
"use strict";

import * as background from "./background.js";
import { caughtUp, endingOf, named, routeLabel, withText, withTool } from "./bubble.js";
import * as flow from "./flow.js";

export function frameIn(t, frame) {
  if (frame.type === "stream") {
    chunkIn(t, frame);
  } else if (frame.type === "error") {
    chunkIn(t, { chunk_type: "error", content: frame.content || frame.message, metadata: frame.metadata });
  } else if (frame.type === "feedback") {
    t.emit({ type: "feedbackShown", messageId: frame.message_id, value: frame.value ?? null }); // what was stored
  }
}

function chunkIn(t, chunk) {
  const metadata = chunk.metadata || {};
  const seq = Number.isInteger(metadata.seq) ? metadata.seq : null;
  if (background.frameIn(t, chunk, seq)) {
    return; // the answer left streaming in another conversation
  }
  if (t.state.phase === "idle") {
    if (chunk.chunk_type === "error" && seq === null) {
      flow.notice(t, chunk.content, metadata); // e.g. a rejected frame outside any answer
    }
    return; // a numbered frame belongs to an answer this page no longer follows
  }
  if (!accept(t, seq, chunk)) {
    return;
  }
  const handle = CHUNKS.get(chunk.chunk_type);
  if (handle === undefined) {
    return;
  }
  handle(t, chunk.content, metadata, chunk.chunk_type);
  const { answer } = t.state;
  if (answer !== null && !answer.closed) {
    t.set({ answer: caughtUp(answer) });
  }
}

/** Whether a frame is new; a numbered one is remembered (also for a reload). Unnumbered frames always are. */
function accept(t, seq, chunk) {
  flow.armStallCheck(t);
  if (seq === null) {
    return true;
  }
  const { record } = t.state;
  if (record.awaitStart) {
    // Resumed on a socket that followed another answer: until our `start`, frames are that answer's.
    if (chunk.chunk_type !== "start" || (chunk.metadata || {}).message_id !== record.messageId) {
      return false;
    }
    t.set({ record: { ...record, awaitStart: false } });
  }
  if (seq <= record.lastSeq) {
    return false; // already shown: a resume overlaps what arrived before the drop
  }
  t.set({ record: { ...t.state.record, lastSeq: seq } });
  t.emit({ type: "saveSeq", seq });
  return true;
}

/** Part of the answer arrived: the flow is streaming (a stop asked for stays asked for). */
function streamed(t, answer) {
  const { phase } = t.state;
  t.set({ answer, phase: phase === "stopping" ? phase : "streaming" });
}

function onStart(t, content, metadata) {
  const route = routeLabel(t.state.record.route, metadata.route);
  const { model, route_reason: routeReason, message_id: messageId } = metadata;
  streamed(t, named(flow.openAnswer(t), { model, route, routeReason, messageId }));
  // `start` named the answer: from now on a new socket resumes it instead of sending the message again.
  const { record } = t.state;
  const started = {
    ...record,
    started: true,
    messageId: metadata.message_id || record.messageId,
    conversationId: metadata.conversation_id || record.conversationId,
  };
  t.set({ record: started });
  t.emit({ type: "save", record: started });
  const { question } = t.state;
  if (question !== null && metadata.user_message_id && !question.messageId) {
    t.set({ question: { ...question, messageId: metadata.user_message_id } }); // now it can be edited
  }
  flow.adopt(t, metadata.conversation_id);
}

function onToken(t, content, metadata) {
  // After a fallback, the first token names the model that answers.
  const answer = named(flow.openAnswer(t), { model: metadata.model, fallback: metadata.fallback });
  streamed(t, withText(answer, content));
}

function onTool(t, content, metadata, chunkType) {
  streamed(t, withTool(flow.openAnswer(t), chunkType, content, metadata));
}

function onEnd(t, content, metadata) {
  const retry = endingOf(metadata).retryable ? flow.retryOf(t.state.record) : null;
  flow.endAnswer(t, { kind: "complete", meta: metadata, retry });
  flow.finishAnswer(t, metadata);
}

function onError(t, content, metadata) {
  if (metadata.code === "shutting_down" && flow.requeue(t, content, metadata)) {
    return;
  }
  flow.showError(t, content, metadata);
}

const CHUNKS = new Map([
  ["start", onStart],
  ["token", onToken],
  ["tool_call", onTool],
  ["tool_result", onTool],
  ["end", onEnd],
  ["error", onError],
]);
