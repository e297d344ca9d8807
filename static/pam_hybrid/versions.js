// The controls of a message's versions: "‹ 2 / 3 ›" between its versions, Edit on a question (it becomes a
// textarea: Save asks again from there), and Regenerate / Ask the stronger model on the latest answer. Elements only:
// each control reports what the user chose through the callbacks it is given.
"use strict";

import { lineIcon } from "./icons.js";

function button(className, testId, text, label = null) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = className;
  node.dataset.testid = testId;
  node.textContent = text;
  if (label) {
    node.setAttribute("aria-label", label);
    node.title = label;
  }
  return node;
}

/** A row of small controls under a message. */
export function toolBar(testId) {
  const node = document.createElement("div");
  node.className = "message-tools";
  node.dataset.testid = testId;
  return node;
}

/** "‹ 2 / 3 ›" for a message with other versions (`siblings`: their ids, its own included, oldest first), or null. */
export function versionNav(messageId, siblings, onVersion) {
  const index = Array.isArray(siblings) ? siblings.indexOf(messageId) : -1;
  if (index < 0 || siblings.length < 2) {
    return null;
  }
  const nav = document.createElement("div");
  nav.className = "versions";
  nav.dataset.testid = "versions";
  nav.setAttribute("role", "group");
  nav.setAttribute("aria-label", "Versions");
  const prev = button("icon-button version-step", "version-prev", "‹", "Previous version");
  const next = button("icon-button version-step", "version-next", "›", "Next version");
  const label = document.createElement("span");
  label.className = "version-label";
  label.dataset.testid = "version-label";
  label.textContent = `${index + 1} / ${siblings.length}`;
  prev.disabled = index === 0;
  next.disabled = index === siblings.length - 1;
  prev.addEventListener("click", () => onVersion(siblings[index - 1]));
  next.addEventListener("click", () => onVersion(siblings[index + 1]));
  nav.append(prev, label, next);
  return nav;
}

/** Edit on a question: the text becomes a textarea; Save (or Enter) calls onEdit(text), Cancel (or Escape) undoes. */
export function editControl(item, text, onEdit) {
  const tools = toolBar("user-tools");
  const edit = button("btn btn-ghost btn-small", "edit-button", "Edit", "Edit this message");
  edit.addEventListener("click", () => openEditor(item, text, onEdit));
  tools.append(edit);
  return tools;
}

function openEditor(item, text, onEdit) {
  const content = item.querySelector('[data-testid="message-content"]');
  if (content === null || item.querySelector('[data-testid="edit-input"]') !== null) {
    return;
  }
  const form = document.createElement("form");
  form.className = "message-editor";
  const input = document.createElement("textarea");
  input.className = "message-editor-input";
  input.dataset.testid = "edit-input";
  input.setAttribute("aria-label", "Edit your message");
  input.rows = Math.min(8, Math.max(2, text.split("\n").length));
  input.value = text;
  const save = button("btn btn-primary btn-small", "edit-save", "Save");
  save.type = "submit";
  const cancel = button("btn btn-ghost btn-small", "edit-cancel", "Cancel");
  const actions = document.createElement("div");
  actions.className = "message-editor-actions";
  actions.append(cancel, save);
  form.append(input, actions);
  const close = () => {
    form.remove();
    content.hidden = false;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim()) {
      onEdit(input.value);
    }
  });
  cancel.addEventListener("click", close);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  content.hidden = true;
  content.after(form);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** Regenerate (same route as asked) and, unless it already was, Ask the stronger model (route complex). */
export function answerActions(route, onRegenerate) {
  const tools = toolBar("answer-actions");
  const again = button("btn btn-ghost btn-small", "regenerate-button", "Regenerate", "Regenerate this answer");
  again.addEventListener("click", () => onRegenerate(route || "auto"));
  tools.append(again);
  if (route !== "complex") {
    const stronger = button("btn btn-ghost btn-small", "ask-stronger-button", "Ask the stronger model");
    stronger.addEventListener("click", () => onRegenerate("complex"));
    tools.append(stronger);
  }
  return tools;
}

const THUMBS = [
  { value: "up", testId: "thumbs-up", label: "Good answer",
    path: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3" },
  { value: "down", testId: "thumbs-down", label: "Bad answer",
    path: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17" },
];

function thumb({ value, testId, label, path }) {
  const node = button("icon-button feedback-button", testId, "", label);
  node.dataset.value = value;
  node.append(lineIcon(path));
  return node;
}

/** Show `value` ("up", "down" or null) as the pressed thumb of a feedback bar. */
export function showFeedback(tools, value) {
  for (const node of tools.querySelectorAll(".feedback-button")) {
    node.setAttribute("aria-pressed", String(node.dataset.value === value));
  }
}

/** Thumbs up / down on a finished answer, `value` pressed: onFeedback(chosen, before), chosen "up" or "down", or null
 * when the pressed one is pressed again (the rating is cleared). Its own bar: a new question takes Regenerate away,
 * not the rating. */
export function feedbackControl(value, onFeedback) {
  const tools = toolBar("answer-feedback");
  tools.setAttribute("role", "group");
  tools.setAttribute("aria-label", "Rate this answer");
  for (const spec of THUMBS) {
    const node = thumb(spec);
    node.addEventListener("click", () => {
      const pressed = tools.querySelector('.feedback-button[aria-pressed="true"]');
      const before = pressed === null ? null : pressed.dataset.value;
      const chosen = before === spec.value ? null : spec.value;
      showFeedback(tools, chosen);
      onFeedback(chosen, before);
    });
    tools.append(node);
  }
  showFeedback(tools, value);
  return tools;
}
