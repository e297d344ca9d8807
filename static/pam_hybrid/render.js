// Draws the state into the page: the controls the answer flow locks, the connection, the title, the sidebar, and the
// message list (history, our question, the answer). Also carries out the page's own effects (focus, composer, sidebar).
"use strict";

import { canSend } from "./flow.js";
import { renderUserMessage } from "./messages.js";
import { AnswerSlot } from "./slot.js";
import { renderHistory } from "./transcript.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected — reload",
};
const STICKY_SCROLL_PX = 96;
const MAX_INPUT_HEIGHT_PX = 240;

export class ChatView {
  /** dom: the page's elements by role; sidebar: a Sidebar; initial: the state the page's HTML shows (nothing is
   * drawn for it); onRetry(text, route) for every Retry button. */
  constructor(dom, sidebar, initial, { onRetry }) {
    this.dom = dom;
    this.sidebar = sidebar;
    this.onRetry = onRetry;
    this.slot = new AnswerSlot({ append: (element) => this.dom.messages.append(element), onRetry });
    this.question = { key: null, status: null, element: null };
    this.drawn = initial;
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
    messages.dataset.state = busy ? "streaming" : "idle";
    messages.setAttribute("aria-busy", String(busy));
    typing.hidden = !busy || (state.answer !== null && !state.answer.closed);
    stop.hidden = !busy;
    stop.disabled = state.phase === "stopping";
    send.disabled = !canSend(state, state.draft);
    if (busy !== (before.phase !== "idle")) {
      this.sidebar.setLocked(busy);
    }
    if (state.sidebar !== before.sidebar) {
      this.renderSidebar(state.sidebar, before.sidebar);
    }
    const { status } = state.socket;
    if (status !== before.socket.status) {
      connection.dataset.status = status;
      connection.querySelector(".connection-text").textContent = STATUS_TEXT[status];
      connection.title = STATUS_TEXT[status];
    }
    if (state.title !== before.title) {
      title.textContent = state.title;
      document.title = `${state.title} · PAM Hybrid`;
    }
  }

  renderSidebar({ conversations, activeId }, before) {
    if (conversations !== before.conversations) {
      this.sidebar.show(conversations, activeId);
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
      }
      this.dom.messages.append(element);
      this.question = { key: question.key, status: "complete", element };
      added = true;
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
