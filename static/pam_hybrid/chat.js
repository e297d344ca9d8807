// The chat page: wires the sidebar, the message list and the composer to the chat socket. The answer in flight is
// followed by sequence number, so a socket that drops or a page that reloads picks it up where it left off.
"use strict";

import { ChatApi, NotFoundError, UnauthorizedError } from "./api.js";
import { newClientId } from "./format.js";
import { planHistory, renderHistory } from "./history.js";
import { Inflight, newRecord } from "./inflight.js";
import { renderUserMessage } from "./messages.js";
import { Sidebar, UNTITLED } from "./sidebar.js";
import { AnswerSlot } from "./slot.js";
import { ChatSocket, socketUrl } from "./socket.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected — reload",
};
const NEW_CHAT_TITLE = "New chat";
const CANCEL_GRACE_MS = 5000;
// With no frame for this long, ask the history API whether the answer ended without us (its stream went on in
// another server process, say); while it is still streaming, keep waiting.
const STALL_CHECK_MS = 30000;
const STICKY_SCROLL_PX = 96;
const MAX_INPUT_HEIGHT_PX = 240;
const RETRYABLE_CODES = new Set(["provider_error", "not_found", "busy", "interrupted", "shutting_down"]);
// A message refused by a server that is restarting goes again on the next socket; if this one is not closed by then
// (the server closes idle sockets as it drains), the refusal shows, with Retry.
const REFUSED_WAIT_MS = 5000;
const LOST_TEXT = "The connection was lost.";
const GAVE_UP_TEXT = "The connection was lost. Reload the page to pick the answer up again.";
const NOT_FOUND_TEXT = "This answer could not be picked up again: it is no longer available.";

function byTestId(testId) {
  return document.querySelector(`[data-testid="${testId}"]`);
}

class ChatPage {
  constructor(body) {
    const data = body.dataset;
    this.loginUrl = data.loginUrl;
    this.maxChars = Number(data.maxChars) || Infinity;
    this.api = new ChatApi({
      conversationsUrl: data.apiConversations,
      messagesUrlTemplate: data.apiMessages,
      idPlaceholder: data.apiIdPlaceholder,
    });
    this.socket = new ChatSocket(socketUrl(data.wsPath), {
      onFrame: (frame) => this.handleFrame(frame),
      onStatus: (status) => this.showConnection(status),
      onOpen: () => this.handleOpen(),
      onDrop: (wasOpen) => this.handleDrop(wasOpen),
      onAuthFailure: () => this.goToLogin(),
    });
    this.sidebar = new Sidebar((conversationId) => this.openConversation(conversationId));
    this.inflight = new Inflight(this.socket, {
      stallMs: STALL_CHECK_MS,
      onStall: (record) => this.checkStalled(record),
    });
    this.dom = {
      newChat: byTestId("new-chat"),
      title: byTestId("conversation-title"),
      connection: byTestId("connection-status"),
      scroller: byTestId("conversation"),
      emptyState: byTestId("empty-state"),
      messages: byTestId("message-list"),
      typing: byTestId("typing-indicator"),
      form: byTestId("composer"),
      input: byTestId("composer-input"),
      route: byTestId("route-select"),
      send: byTestId("send-button"),
      stop: byTestId("stop-button"),
    };
    this.conversationId = null;
    this.slot = new AnswerSlot((element) => {
      this.dom.typing.hidden = true;
      this.appendMessage(element, false);
    });
    this.streaming = false; // exactly while `inflight` follows an answer
    this.userElement = null; // our question while it waits to be sent
    this.cancelTimer = null;
    this.refusedTimer = null;
    this.loadToken = 0;
  }

  start() {
    this.bindEvents();
    const stored = this.inflight.restored();
    this.socket.connect();
    this.refreshSidebar();
    if (stored !== null) {
      this.restore(stored);
    }
    this.updateComposer();
    this.dom.input.focus();
  }

  bindEvents() {
    const { form, input, stop, newChat } = this.dom;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendMessage();
    });
    input.addEventListener("keydown", (event) => this.handleKey(event));
    input.addEventListener("input", () => {
      this.autosize();
      this.updateComposer();
    });
    stop.addEventListener("click", () => this.cancel());
    newChat.addEventListener("click", () => this.newChat());
    window.addEventListener("online", () => this.socket.retryNow());
    window.addEventListener("pagehide", () => this.socket.stop());
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) {
        window.location.reload(); // back/forward cache: the socket was closed on pagehide
      }
    });
  }

  handleKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.sendMessage();
    } else if (event.key === "Escape" && this.streaming) {
      this.cancel();
    }
  }

  autosize() {
    const { input } = this.dom;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, MAX_INPUT_HEIGHT_PX)}px`;
  }

  // --- sending and cancelling ---

  sendMessage() {
    const content = this.dom.input.value;
    if (!this.canSend(content)) {
      return;
    }
    this.dom.input.value = "";
    this.autosize();
    this.submit(content, this.dom.route.value);
  }

  /** Ask: the question shows at once and goes out now, or as soon as the socket is back (queued meanwhile). */
  submit(content, route) {
    const frame = {
      type: "message",
      content,
      conversation_id: this.conversationId,
      stream: true,
      route,
      client_msg_id: newClientId(),
    };
    this.removeRetryButtons();
    const userElement = renderUserMessage(content);
    this.appendMessage(userElement, true);
    this.slot.clear();
    this.track(newRecord({ frame, userText: content, route, conversationId: this.conversationId }), userElement);
    this.setStreaming(true);
    this.flush();
    this.socket.retryNow(); // if it had given up, try again: there is something to send
  }

  retry(content, route) {
    if (!this.streaming) {
      this.submit(content, route || this.dom.route.value);
    }
  }

  canSend(content) {
    return !this.streaming && !this.socket.authFailed && content.trim() !== "" && content.length <= this.maxChars;
  }

  /** Follow `record` from now on; `userElement` is our question, marked queued until it is sent. */
  track(record, userElement = null) {
    this.inflight.follow(record);
    this.userElement = userElement;
    if (userElement !== null) {
      userElement.dataset.status = "queued";
    }
  }

  /** Send what the answer in flight needs on this socket (see Inflight.flush), and a stop asked for meanwhile. */
  flush() {
    if (!this.inflight.flush()) {
      return;
    }
    if (this.userElement !== null) {
      this.userElement.dataset.status = "complete";
      this.userElement = null;
    }
    if (this.inflight.cancelRequested) {
      this.sendCancel();
    }
  }

  cancel() {
    if (!this.streaming) {
      return;
    }
    const { record } = this.inflight;
    if (record !== null && !record.messageId && !this.inflight.sentHere) {
      if (!record.sent) {
        this.unsend();
      } else {
        // Sent, never acknowledged (or refused), and not on this socket: nothing to say stop to; the server drops an
        // answer nobody follows.
        this.slot.shown().stop();
        this.setStreaming(false);
      }
      return;
    }
    this.dom.stop.disabled = true;
    if (this.inflight.requestCancel()) {
      this.sendCancel(); // otherwise it follows the resume once the socket is back
    }
  }

  sendCancel() {
    this.socket.send({ type: "cancel" });
    window.clearTimeout(this.cancelTimer);
    // If the server never confirms (it normally answers with `end` or `error`), stop waiting anyway.
    this.cancelTimer = window.setTimeout(() => {
      if (this.streaming) {
        this.slot.shown().stop();
        this.setStreaming(false);
      }
    }, CANCEL_GRACE_MS);
  }

  /** Take back a question that never left the page: it goes back into the composer. */
  unsend() {
    const { userText } = this.inflight.record;
    if (this.userElement !== null) {
      this.userElement.remove();
    }
    if (!this.dom.input.value) {
      this.dom.input.value = userText;
      this.autosize();
    }
    this.setStreaming(false);
    this.dom.emptyState.hidden = this.dom.messages.childElementCount > 0;
  }

  // --- incoming frames ---

  handleFrame(frame) {
    if (frame.type === "stream") {
      this.handleChunk(frame);
    } else if (frame.type === "error") {
      this.handleChunk({ chunk_type: "error", content: frame.content || frame.message, metadata: frame.metadata });
    }
  }

  handleChunk(chunk) {
    const metadata = chunk.metadata || {};
    const seq = Number.isInteger(metadata.seq) ? metadata.seq : null;
    if (!this.streaming) {
      if (chunk.chunk_type === "error" && seq === null) {
        this.slot.answer().fail(chunk.content, metadata); // e.g. a rejected frame outside any answer
        this.slot.clear();
      }
      return; // a numbered frame belongs to an answer this page no longer follows
    }
    if (!this.inflight.accept(seq)) {
      return;
    }
    const stick = this.isNearBottom();
    switch (chunk.chunk_type) {
      case "start":
        this.handleStart(metadata);
        break;
      case "token":
        this.handleToken(chunk.content, metadata);
        break;
      case "tool_call":
      case "tool_result":
        this.slot.answer().addTool(chunk.chunk_type, chunk.content, metadata);
        break;
      case "end":
        this.handleEnd(metadata);
        break;
      case "error":
        this.handleError(chunk.content, metadata);
        break;
      default:
        return;
    }
    this.slot.catchUp();
    if (stick) {
      this.scrollToBottom();
    }
  }

  handleStart(metadata) {
    const answer = this.slot.answer();
    answer.setModel(metadata.model);
    answer.setMessageId(metadata.message_id);
    this.inflight.started(metadata);
    this.adoptConversation(metadata.conversation_id);
  }

  handleToken(text, metadata) {
    const answer = this.slot.answer();
    answer.setModel(metadata.model); // after a fallback, the first token names the model that answers
    answer.setFallback(metadata.fallback);
    answer.appendText(text);
  }

  handleEnd(metadata) {
    const answer = this.slot.answer();
    if (answer.complete(metadata)) {
      this.offerRetry(answer);
    }
    this.finishAnswer(metadata);
  }

  handleError(content, metadata) {
    if (metadata.code === "shutting_down" && this.inflight.requeue()) {
      this.waitForAnotherSocket(() => this.showError(content, metadata));
      return;
    }
    this.showError(content, metadata);
  }

  showError(content, metadata) {
    const answer = this.slot.shown();
    if (metadata.code === "cancelled") {
      answer.stop(content || "Stopped."); // a stop that came before the answer began
    } else {
      answer.fail(metadata.code === "not_found" ? NOT_FOUND_TEXT : content, metadata);
      if (!metadata.code || RETRYABLE_CODES.has(metadata.code)) {
        this.offerRetry(answer);
      }
    }
    this.finishAnswer(metadata);
  }

  /** Our message was refused by a server about to restart: it goes again on the next socket, unless this one is
   * still open after a while (then `giveUp`). */
  waitForAnotherSocket(giveUp) {
    const { record, connection } = this.inflight;
    window.clearTimeout(this.refusedTimer);
    this.refusedTimer = window.setTimeout(() => {
      if (this.streaming && this.inflight.record === record && this.inflight.connection === connection) {
        giveUp();
      }
    }, REFUSED_WAIT_MS);
  }

  finishAnswer(metadata) {
    this.setStreaming(false);
    this.adoptConversation(metadata.conversation_id);
  }

  /** A Retry button that sends the answer's question again, as a new message in this conversation. */
  offerRetry(answer) {
    const { record } = this.inflight;
    if (record !== null && record.userText) {
      const { userText, route } = record;
      answer.offerRetry(() => this.retry(userText, route));
    }
  }

  removeRetryButtons() {
    for (const button of this.dom.messages.querySelectorAll('[data-testid="retry-button"]')) {
      button.parentElement.remove();
    }
  }

  adoptConversation(conversationId) {
    if (!conversationId) {
      return;
    }
    const isNew = conversationId !== this.conversationId;
    this.conversationId = conversationId;
    if (isNew || !this.streaming) {
      this.refreshSidebar();
    }
  }

  // --- the socket coming and going ---

  handleOpen() {
    this.inflight.opened();
    this.flush();
  }

  handleDrop(wasOpen) {
    if (!wasOpen) {
      // A refused handshake hides the server's close code (browsers report 1006): ask whether we are signed out.
      this.checkSignedIn();
    }
    this.inflight.dropped();
    if (!this.streaming || this.inflight.resumable) {
      return; // resumed (or its message sent again) once the socket is back
    }
    this.slot.answer().fail(LOST_TEXT); // an answer without an id cannot be resumed
    this.setStreaming(false);
  }

  /** The socket ran out of attempts: a question not yet answered stays queued; an answer shows the loss. */
  handleGaveUp() {
    const { record } = this.inflight;
    if (!this.streaming || this.socket.authFailed || record === null || (!record.messageId && !record.started)) {
      return;
    }
    this.slot.shown().fail(GAVE_UP_TEXT);
    this.setStreaming(false, { keepStored: Boolean(record.messageId) }); // a reload resumes it
  }

  /** Nothing arrived for a long while: if the saved answer has ended, show it as saved; else keep waiting. */
  async checkStalled(record) {
    if (!this.streaming || record === null || !record.messageId || !record.conversationId) {
      return;
    }
    let data = null;
    try {
      data = await this.api.conversation(record.conversationId);
    } catch {
      // asked again at the next check
    }
    if (this.inflight.record !== record) {
      return;
    }
    const row = data && data.messages.find((m) => m.id === record.messageId);
    if (!row || row.status === "streaming") {
      this.inflight.armStallCheck();
      return;
    }
    this.setStreaming(false);
    this.showConversation(data, null);
  }

  // --- page state ---

  setStreaming(streaming, { keepStored = false } = {}) {
    this.streaming = streaming;
    const { messages, typing, stop } = this.dom;
    messages.dataset.state = streaming ? "streaming" : "idle";
    messages.setAttribute("aria-busy", String(streaming));
    typing.hidden = !streaming || !this.slot.empty;
    stop.hidden = !streaming;
    stop.disabled = false;
    if (!streaming) {
      this.slot.clear();
      this.userElement = null;
      this.inflight.end({ keepStored });
      window.clearTimeout(this.cancelTimer);
      window.clearTimeout(this.refusedTimer);
    }
    this.sidebar.setLocked(streaming);
    this.updateComposer();
  }

  updateComposer() {
    this.dom.send.disabled = !this.canSend(this.dom.input.value);
  }

  showConnection(status) {
    const { connection } = this.dom;
    connection.dataset.status = status;
    connection.querySelector(".connection-text").textContent = STATUS_TEXT[status];
    connection.title = STATUS_TEXT[status];
    if (status === "disconnected") {
      this.handleGaveUp();
    }
    this.updateComposer();
  }

  appendMessage(element, forceScroll) {
    const stick = forceScroll || this.isNearBottom();
    this.dom.emptyState.hidden = true;
    this.dom.messages.append(element);
    if (stick) {
      this.scrollToBottom();
    }
  }

  isNearBottom() {
    const { scroller } = this.dom;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICKY_SCROLL_PX;
  }

  scrollToBottom() {
    this.dom.scroller.scrollTop = this.dom.scroller.scrollHeight;
  }

  setTitle(title) {
    this.dom.title.textContent = title;
    document.title = `${title} · PAM Hybrid`;
  }

  goToLogin() {
    window.location.assign(`${this.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
  }

  async checkSignedIn() {
    try {
      await this.api.conversations();
    } catch (error) {
      if (error instanceof UnauthorizedError) {
        this.goToLogin();
      }
    }
  }

  // --- conversations ---

  newChat() {
    if (this.streaming) {
      return;
    }
    this.loadToken += 1;
    this.inflight.forget(); // an answer kept for a reload after the socket gave up: the user has moved on
    this.conversationId = null;
    this.dom.messages.replaceChildren();
    this.dom.emptyState.hidden = false;
    this.setTitle(NEW_CHAT_TITLE);
    this.sidebar.setActive(null);
    this.sidebar.setOpen(false);
    this.dom.input.focus();
  }

  /** After a reload: show what this tab was waiting for, and pick its answer up again. */
  restore(stored) {
    if (stored.conversationId) {
      this.openConversation(stored.conversationId, stored);
      return;
    }
    // The first message of a new conversation, not acknowledged before the reload: show it and send it again.
    const userElement = renderUserMessage(stored.userText);
    this.appendMessage(userElement, true);
    this.track({ ...stored, lastSeq: -1 }, stored.messageId ? null : userElement);
    this.setStreaming(true);
    this.flush();
  }

  /** Show a conversation; `stored` is this tab's record of an answer in flight in it (after a reload). */
  async openConversation(conversationId, stored = null) {
    if (this.streaming) {
      return;
    }
    const token = ++this.loadToken;
    let data;
    try {
      data = await this.api.conversation(conversationId);
    } catch (error) {
      if (!(stored !== null && error instanceof NotFoundError)) {
        this.handleApiError(error, "This conversation could not be loaded.");
        return;
      }
      // A new conversation is saved once the model accepts its first message: not yet.
      data = { conversation: { id: conversationId, title: "" }, messages: [] };
    }
    if (token !== this.loadToken || this.streaming) {
      return; // another conversation was opened meanwhile
    }
    if (stored === null) {
      this.inflight.forget(); // as in newChat
    }
    this.showConversation(data, stored);
  }

  showConversation(data, stored) {
    const { messages } = data;
    const plan = planHistory(messages, stored);
    this.conversationId = data.conversation.id;
    this.setTitle(data.conversation.title || (messages.length > 0 ? UNTITLED : NEW_CHAT_TITLE));
    const { elements, userElement } = renderHistory(messages, plan, {
      resume: (row) => this.slot.resume(row),
      retry: (text, route) => this.retry(text, route),
    });
    this.dom.messages.replaceChildren(...elements);
    this.dom.emptyState.hidden = elements.length > 0;
    this.sidebar.setActive(this.conversationId);
    this.sidebar.setOpen(false);
    if (plan.record !== null) {
      plan.record.conversationId = plan.record.conversationId || this.conversationId;
      this.track(plan.record, plan.record.messageId ? null : userElement);
      this.setStreaming(true);
      this.flush();
    } else if (stored !== null) {
      this.inflight.end(); // it ended meanwhile: the history shows it as saved
    }
    this.scrollToBottom();
    this.dom.input.focus();
  }

  async refreshSidebar() {
    let conversations;
    try {
      conversations = await this.api.conversations();
    } catch (error) {
      this.handleApiError(error, null);
      return;
    }
    this.sidebar.show(conversations, this.conversationId);
    const title = this.sidebar.titleOf(this.conversationId);
    if (title) {
      this.setTitle(title);
    }
  }

  handleApiError(error, message) {
    if (error instanceof UnauthorizedError) {
      this.goToLogin();
    } else if (message) {
      this.slot.answer().fail(message);
      this.slot.clear();
    }
  }
}

new ChatPage(document.body).start();
