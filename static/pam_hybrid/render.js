// Draws the state into the page: the controls the answer flow locks, the connection, the title, the sidebar, and the
// message list (history, our question, the answer). Also carries out the page's own effects (focus, composer, sidebar).
"use strict";

import { canSend } from "./flow.js";
import { renderUserMessage } from "./messages.js";
import { AnswerSlot } from "./slot.js";
import { renderHistory } from "./transcript.js";
import { answerActions, editControl, feedbackControl, showFeedback } from "./versions.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline — will reconnect",
  disconnected: "Signed out",
  crowded: "Too many tabs open",
};
const STICKY_SCROLL_PX = 96;
const MAX_INPUT_HEIGHT_PX = 240;

export class ChatView {
  /** dom: the page's elements by role; sidebar: a Sidebar; initial: the state the page's HTML shows (nothing is
   * drawn for it); onRetry(text, route, messageId) for every Retry button; actions: { onVersion(id), onEdit(id, text),
   * onRegenerate(id, route), onFeedback(id, value, before) } for the version controls and thumbs; exportUrl(id,
   * format) for the export links. */
  constructor(dom, sidebar, initial, { onRetry, actions, exportUrl }) {
    this.dom = dom;
    this.sidebar = sidebar;
    this.onRetry = onRetry;
    this.actions = actions;
    this.exportUrl = exportUrl;
    this.slot = new AnswerSlot({
      append: (element, bubble) => this.place(element, bubble.replaces),
      onRetry,
      onEnded: (message, bubble) => this.offerActions(message, bubble),
    });
    this.question = { key: null, status: null, element: null };
    this.drawn = initial;
    // Answer text is drawn on animation frames (markdown.js): follow it down while the reader is at the bottom.
    this.stuck = true;
    dom.scroller.addEventListener("scroll", () => {
      this.stuck = this.isNearBottom();
    }, { passive: true });
    dom.messages.addEventListener("pam:drawn", () => {
      if (this.stuck) {
        this.scrollToBottom();
      }
    });
  }

  render(state) {
    const before = this.drawn;
    const stick = this.isNearBottom();
    this.renderControls(state, before);
    const rebuilt = state.list !== before.list && this.renderList(state);
    const asked = this.renderQuestion(state.question);
    const grew = this.slot.sync(state.answer);
    if (state.scroll !== before.scroll || ((rebuilt || asked || grew) && stick)) {
      this.scrollToBottom();
    }
    this.dom.emptyState.hidden = this.dom.messages.childElementCount > 0;
    this.drawn = state;
  }

  renderControls(state, before) {
    const { messages, typing, stop, send, connection, title } = this.dom;
    const busy = state.phase !== "idle";
    if (busy !== (before.phase !== "idle") || !messages.dataset.state) {
      messages.dataset.state = busy ? "streaming" : "idle"; // written on a change only: a write costs a style check
      (messages.closest('[role="log"]') || messages).setAttribute("aria-busy", String(busy));
    }
    typing.hidden = !busy || (state.answer !== null && !state.answer.closed);
    stop.hidden = !busy;
    stop.disabled = state.phase === "stopping";
    send.disabled = !canSend(state, state.draft);
    if (state.conversationId !== before.conversationId) {
      this.renderExports(state.conversationId);
    }
    if (state.sidebar !== before.sidebar) {
      this.renderSidebar(state.sidebar, before.sidebar);
    }
    const { status } = state.socket;
    if (status !== before.socket.status) {
      this.dom.crowded.hidden = status !== "crowded";
      connection.dataset.status = status;
      connection.querySelector(".connection-text").textContent = STATUS_TEXT[status];
      connection.title = STATUS_TEXT[status];
    }
    if (state.title !== before.title) {
      title.textContent = state.title;
      document.title = `${state.title} · PAM Hybrid`;
    }
  }

  renderSidebar(sidebar, before) {
    const { conversations, shown, nextCursor, activeId } = sidebar;
    if (conversations !== before.conversations || shown !== before.shown || nextCursor !== before.nextCursor) {
      this.sidebar.show(sidebar);
    } else if (activeId !== before.activeId) {
      this.sidebar.setActive(activeId);
    }
  }

  /** A new chat, or a conversation opened: the list is rebuilt from its history. */
  renderList(state) {
    const { list, answer } = state;
    const elements = renderHistory(list.messages, list, {
      resume: (row) => this.slot.resume(answer, row),
      onRetry: this.onRetry,
      actions: this.actions,
    });
    this.dom.messages.replaceChildren(...elements);
    this.question = { key: null, status: null, element: null };
    return elements.length > 0;
  }

  /** Our message: shown when asked, marked queued until it is sent, taken back when unsent. */
  renderQuestion(question) {
    let added = false;
    if (question !== null && question.key !== this.question.key) {
      const element = renderUserMessage(question.text);
      if (question.dropsRetries) {
        for (const button of this.dom.messages.querySelectorAll('[data-testid="retry-button"]')) {
          button.parentElement.remove(); // a new question: older answers are not retried any more
        }
        for (const tools of this.dom.messages.querySelectorAll('[data-testid="answer-actions"]')) {
          tools.remove(); // nor regenerated
        }
      }
      if (question.replaces) {
        this.dropFrom(question.replaces); // an edit: the old version and what followed it give way
      }
      this.dom.messages.append(element);
      this.question = { key: question.key, status: "complete", element, messageId: null };
      added = true;
    }
    if (question !== null && question.messageId && question.messageId !== this.question.messageId) {
      const { element } = this.question;
      const messageId = question.messageId;
      element.dataset.messageId = messageId;
      const edit = editControl(element, question.text, (text) => this.actions.onEdit(messageId, text));
      element.querySelector(".message-body").append(edit);
      this.question.messageId = messageId;
    }
    if (question !== null && question.status !== this.question.status) {
      if (question.status === "removed") {
        this.question.element.remove();
      } else {
        this.question.element.dataset.status = question.status;
      }
      this.question.status = question.status;
    }
    return added;
  }

  /** A saved message's element in the list, by id, or null. */
  find(messageId) {
    return this.dom.messages.querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
  }

  /** A new answer: in the place of the one it is a new version of, else at the end. */
  place(element, replaces) {
    const old = replaces ? this.find(replaces) : null;
    if (old !== null) {
      old.replaceWith(element);
    } else {
      this.dom.messages.append(element);
    }
  }

  dropFrom(messageId) {
    for (let node = this.find(messageId); node !== null;) {
      const next = node.nextElementSibling;
      node.remove();
      node = next;
    }
  }

  /** A live answer that finished: Regenerate, Ask the stronger model and thumbs up / down, as on a saved one. */
  offerActions(message, { ending, messageId }) {
    if (ending.kind !== "complete" || !messageId || ending.retry) {
      return;
    }
    const route = ending.meta && ending.meta.route;
    message.body.append(answerActions(route, (chosen) => this.actions.onRegenerate(messageId, chosen)));
    const rate = (value, before) => this.actions.onFeedback(messageId, value, before);
    message.body.append(feedbackControl(null, rate));
  }

  /** The rating the server stored for an answer (its `feedback` frame), shown on its thumbs if it is on the page. */
  showFeedback(messageId, value) {
    const tools = this.find(messageId)?.querySelector('[data-testid="answer-feedback"]');
    if (tools) {
      showFeedback(tools, value);
    }
  }

  renderExports(conversationId) {
    for (const link of this.dom.exports) {
      link.hidden = !conversationId;
      link.href = conversationId ? this.exportUrl(conversationId, link.dataset.format) : "#";
    }
  }

  // --- the page's own effects ---

  focus() {
    this.dom.input.focus();
  }

  closeSidebar() {
    this.sidebar.setOpen(false);
  }

  setComposer(text) {
    this.dom.input.value = text;
    this.autosize();
  }

  autosize() {
    const { input } = this.dom;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, MAX_INPUT_HEIGHT_PX)}px`;
  }

  isNearBottom() {
    const { scroller } = this.dom;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICKY_SCROLL_PX;
  }

  scrollToBottom() {
    this.dom.scroller.scrollTop = this.dom.scroller.scrollHeight;
  }
}
