// A saved conversation as elements: the history API's rows as they are, a Retry on a failed latest answer, and the
// row of an answer still streaming given over to the resumed stream (see slot.js).
"use strict";

import { AssistantMessage, renderUserMessage } from "./messages.js";

/**
 * The elements for a planned history (see history.js): saved rows as they are, the row at `resumeIndex` through
 * `resume(row)`, and a Retry on the failed latest answer (`retry`: { index, text, route }) through
 * `onRetry(text, route)`.
 */
export function renderHistory(messages, { resumeIndex, retry }, { resume, onRetry }) {
  return messages.map((message, index) => {
    if (index === resumeIndex) {
      return resume(message);
    }
    const again = retry !== null && retry.index === index ? () => onRetry(retry.text, retry.route) : null;
    return renderStoredMessage(message, again);
  });
}

/** The saved text of an answer still streaming, shown until its resumed stream has caught up with it. */
export function renderCheckpoint(record) {
  const message = new AssistantMessage();
  message.setModel(record.model);
  message.setMessageId(record.id);
  message.appendText(record.content);
  return message;
}

/** An element for one stored message from the history API; `onRetry` adds a Retry button to a failed answer. */
export function renderStoredMessage(record, onRetry = null) {
  if (record.role === "user") {
    return renderUserMessage(record.content);
  }
  const message = new AssistantMessage();
  message.setModel(record.model);
  message.setMessageId(record.id);
  message.appendText(record.content);
  if (record.status === "error" || (record.status === "partial" && record.error)) {
    message.fail(record.error || "This answer failed."); // partial with an error: it failed midway, not stopped
  } else if (record.status === "partial") {
    message.finish("partial", "This answer was interrupted before it finished.");
  } else if (record.status === "streaming") {
    // Still being written, for a socket this page does not follow (only the latest answer is resumed).
    message.finish("partial", "This answer had not finished when the conversation was opened.");
  } else {
    message.finish("complete", "");
  }
  if (onRetry) {
    message.offerRetry(onRetry);
  }
  message.addMeta(record.model, record.route ? [`${record.route} route`] : []);
  return message.element;
}
