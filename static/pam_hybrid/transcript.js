// A saved conversation as elements: the history API's rows as they are, a Retry on a failed latest answer, and the
// row of an answer still streaming given over to the resumed stream (see slot.js).
"use strict";

import { AssistantMessage, liveMetaParts, renderUserMessage } from "./messages.js";
import { answerActions, editControl, feedbackControl, toolBar, versionNav } from "./versions.js";

/**
 * The elements for a planned history (see history.js): saved rows as they are, the row at `resumeIndex` through
 * `resume(row)`, and a Retry on the failed latest answer (`retry`: { index, text, route }) through
 * `onRetry(text, route)`.
 */
export function renderHistory(messages, { resumeIndex, retry }, { resume, onRetry, actions = null }) {
  const latest = messages.length - 1;
  return messages.map((message, index) => {
    if (index === resumeIndex) {
      return resume(message);
    }
    const again = retry !== null && retry.index === index ? () => onRetry(retry.text, retry.route, retry.messageId) : null;
    const element = renderStoredMessage(message, again);
    if (actions !== null) {
      decorate(element, message, index === latest && again === null && resumeIndex < 0, actions);
    }
    return element;
  });
}

/**
 * The version controls of a saved message: "‹ n / m ›" when it has other versions, Edit on a question, Regenerate and
 * Ask the stronger model on the latest answer when it finished, thumbs up / down (its stored rating pressed) on every
 * finished answer. actions: { onVersion(id), onEdit(id, text), onRegenerate(id, route),
 * onFeedback(id, value, before) }.
 */
export function decorate(element, row, latest, { onVersion, onEdit, onRegenerate, onFeedback }) {
  const body = element.querySelector(".message-body");
  if (body === null || !row.id) {
    return;
  }
  element.dataset.messageId = row.id;
  let tools = null;
  if (row.role === "user") {
    tools = editControl(element, row.content, (text) => onEdit(row.id, text));
  } else if (latest && (row.status === "complete" || row.status === "partial")) {
    tools = answerActions(row.route, (route) => onRegenerate(row.id, route));
  }
  const nav = versionNav(row.id, row.siblings, onVersion);
  if (nav !== null) {
    tools = tools || toolBar("message-versions");
    tools.prepend(nav);
  }
  if (tools !== null) {
    body.append(tools);
  }
  if (row.role !== "user" && onFeedback && (row.status === "complete" || row.status === "partial")) {
    body.append(feedbackControl(row.feedback || null, (value, before) => onFeedback(row.id, value, before)));
  }
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
  message.setFallback(record.fallback);
  message.setRouteReason(record.route_reason);
  appendParts(message, record);
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
  const usage = record.usage ? liveMetaParts(record.usage) : [];
  message.addMeta(record.model, [...(record.route ? [`${record.route} route`] : []), ...usage]);
  return message.element;
}

/** The answer as it streamed: text, tool calls and their results in order (older rows without parts: the text). */
function appendParts(message, record) {
  if (!Array.isArray(record.parts) || record.parts.length === 0) {
    message.appendText(record.content);
    return;
  }
  for (const part of record.parts) {
    if (part.type === "text") {
      message.appendText(part.content);
    } else if (part.type === "tool_call") {
      message.addTool("tool_call", "", { call_id: part.call_id, name: part.name, arguments: part.arguments });
    } else if (part.type === "tool_result") {
      const { call_id: callId, name, ok, duration_ms: durationMs } = part;
      message.addTool("tool_result", part.content, { call_id: callId, name, ok, duration_ms: durationMs });
    }
  }
}
