// Opening a conversation: which saved rows show as they are, and which answer still streaming the page picks up
// again (its row then gives way to the resumed stream, so nothing shows twice). Pure: transcript.js draws the rows.
"use strict";

import { newRecord } from "./inflight.js";

const ROUTES = new Set(["auto", "simple", "complex"]);

/**
 * messages: the history API's rows. stored: this tab's record of the answer it was waiting for (or null).
 * Returns { record, resumeIndex, appendUser, retry }:
 *   record: what to track and resume (lastSeq -1: the page starts from an empty answer), or null;
 *   resumeIndex: the row the resumed answer replaces (-1: not saved yet, it goes after the history);
 *   appendUser: our own message when the server has not saved it yet (shown after the history), or null;
 *   retry: { index, text, route, messageId } when the latest answer failed, for a Retry button (a new version of
 *   it), or null.
 */
export function planHistory(messages, stored) {
  const plan = stored ? planOwn(messages, stored) : planOther(messages);
  return { appendUser: null, ...plan, retry: plan.record ? null : failedLatest(messages) };
}

/** This tab sent the message (or followed the answer) before the reload. */
function planOwn(messages, stored) {
  const fresh = { ...stored, lastSeq: -1 };
  if (stored.messageId) {
    const index = messages.findIndex((m) => m.id === stored.messageId);
    if (index < 0) {
      // Named by `start` but not saved yet (the model had not accepted the request): resume it by id.
      return { record: fresh, resumeIndex: -1, appendUser: stored.userText || null };
    }
    const streaming = messages[index].status === "streaming";
    return streaming ? { record: fresh, resumeIndex: index } : { record: null, resumeIndex: -1 };
  }
  if (stored.kind === "regenerate") {
    // A new version of a saved answer, not named yet: its question is in the history; ask for it again.
    return { record: fresh, resumeIndex: -1 };
  }
  const userIndex = ownUserRow(messages, stored);
  if (userIndex < 0) {
    // Not saved: send the message again, with the same client_msg_id (the server never runs it twice).
    return { record: fresh, resumeIndex: -1, appendUser: stored.userText || null };
  }
  const answer = messages[userIndex + 1];
  if (answer && answer.role === "assistant" && answer.status === "streaming") {
    return { record: { ...fresh, messageId: answer.id, sent: true }, resumeIndex: userIndex + 1 };
  }
  return { record: null, resumeIndex: -1 };
}

/** Opened from the sidebar: follow the latest answer if it is still streaming (asked for in another tab). */
function planOther(messages) {
  const index = messages.length - 1;
  const last = messages[index];
  if (!last || last.role !== "assistant" || last.status !== "streaming") {
    return { record: null, resumeIndex: -1 };
  }
  const question = messages[index - 1];
  const record = newRecord({
    userText: question && question.role === "user" ? question.content : "",
    route: ROUTES.has(last.route) ? last.route : "auto",
    messageId: last.id,
  });
  return { record, resumeIndex: index };
}

/**
 * Our unanswered message among the saved rows: by client_msg_id when the API gives it; otherwise the same text in
 * one of the last two rows with an answer streaming after it (an older identical question has a finished answer).
 */
function ownUserRow(messages, stored) {
  const clientMsgId = stored.frame && stored.frame.client_msg_id;
  if (messages.some((m) => "client_msg_id" in m)) {
    return messages.findIndex((m) => m.role === "user" && clientMsgId && m.client_msg_id === clientMsgId);
  }
  const index = messages.length - 2;
  const [question, answer] = messages.slice(-2);
  const matches =
    question && question.role === "user" && question.content === stored.userText &&
    answer && answer.role === "assistant" && answer.status === "streaming";
  return matches ? index : -1;
}

/** The latest answer, when it failed (an error, or cut by one): its question can be sent again. */
function failedLatest(messages) {
  const index = messages.length - 1;
  const last = messages[index];
  const question = messages[index - 1];
  const failed =
    last && last.role === "assistant" && (last.status === "error" || (last.status === "partial" && last.error));
  if (!failed || !question || question.role !== "user") {
    return null; // a partial answer without an error was stopped by its user: nothing to retry
  }
  return { index, text: question.content, route: ROUTES.has(last.route) ? last.route : "auto", messageId: last.id };
}
