// The chat page: wires the sidebar, the message list and the composer to the chat socket.
"use strict";

import { ChatApi, UnauthorizedError } from "./api.js";
import { newClientId } from "./format.js";
import { AssistantMessage, renderStoredMessage, renderUserMessage } from "./messages.js";
import { Sidebar, UNTITLED } from "./sidebar.js";
import { ChatSocket, socketUrl } from "./socket.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected — reload",
};
const NEW_CHAT_TITLE = "New chat";
const CANCEL_GRACE_MS = 5000;
const STICKY_SCROLL_PX = 96;
const MAX_INPUT_HEIGHT_PX = 240;

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
      onDrop: (wasOpen) => this.handleDrop(wasOpen),
      onAuthFailure: () => this.goToLogin(),
    });
    this.sidebar = new Sidebar((conversationId) => this.openConversation(conversationId));
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
    this.current = null;
    this.streaming = false;
    this.cancelTimer = null;
    this.loadToken = 0;
  }

  start() {
    this.bindEvents();
    this.socket.connect();
    this.refreshSidebar();
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
    const sent = this.socket.send({
      type: "message",
      content,
      conversation_id: this.conversationId,
      stream: true,
      route: this.dom.route.value,
      client_msg_id: newClientId(),
    });
    if (!sent) {
      return;
    }
    this.appendMessage(renderUserMessage(content), true);
    this.dom.input.value = "";
    this.autosize();
    this.current = null;
    this.setStreaming(true);
  }

  canSend(content) {
    return !this.streaming && this.socket.isOpen() && content.trim() !== "" && content.length <= this.maxChars;
  }

  cancel() {
    if (!this.streaming) {
      return;
    }
    this.socket.send({ type: "cancel" });
    this.dom.stop.disabled = true;
    window.clearTimeout(this.cancelTimer);
    // If the server never confirms (it normally answers with `end` or `error`), stop waiting anyway.
    this.cancelTimer = window.setTimeout(() => {
      if (this.streaming) {
        this.ensureAnswer().stop();
        this.setStreaming(false);
      }
    }, CANCEL_GRACE_MS);
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
    if (!this.streaming) {
      if (chunk.chunk_type === "error") {
        this.ensureAnswer().fail(chunk.content, metadata); // e.g. a rejected frame outside any answer
        this.current = null;
      }
      return;
    }
    const stick = this.isNearBottom();
    switch (chunk.chunk_type) {
      case "start":
        this.handleStart(metadata);
        break;
      case "token":
        this.ensureAnswer().appendText(chunk.content);
        break;
      case "tool_call":
      case "tool_result":
        this.ensureAnswer().addTool(chunk.chunk_type, chunk.content, metadata);
        break;
      case "end":
        this.ensureAnswer().complete(metadata);
        this.finishAnswer(metadata);
        break;
      case "error":
        this.ensureAnswer().fail(chunk.content, metadata);
        this.finishAnswer(metadata);
        break;
      default:
        return;
    }
    if (stick) {
      this.scrollToBottom();
    }
  }

  handleStart(metadata) {
    this.ensureAnswer().setModel(metadata.model);
    this.adoptConversation(metadata.conversation_id);
  }

  finishAnswer(metadata) {
    this.setStreaming(false);
    this.adoptConversation(metadata.conversation_id);
  }

  /** The answer being streamed, created on `start` (or on the first frame if `start` never came). */
  ensureAnswer() {
    if (this.current === null) {
      this.current = new AssistantMessage();
      this.dom.typing.hidden = true;
      this.appendMessage(this.current.element, false);
    }
    return this.current;
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

  handleDrop(wasOpen) {
    if (!wasOpen) {
      // A refused handshake hides the server's close code (browsers report 1006): ask whether we are signed out.
      this.checkSignedIn();
    }
    if (this.streaming) {
      this.ensureAnswer().fail("The connection was lost.");
      this.setStreaming(false);
    }
  }

  // --- page state ---

  setStreaming(streaming) {
    this.streaming = streaming;
    const { messages, typing, stop } = this.dom;
    messages.dataset.state = streaming ? "streaming" : "idle";
    messages.setAttribute("aria-busy", String(streaming));
    typing.hidden = !streaming || this.current !== null;
    stop.hidden = !streaming;
    stop.disabled = false;
    if (!streaming) {
      this.current = null;
      window.clearTimeout(this.cancelTimer);
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
    this.conversationId = null;
    this.dom.messages.replaceChildren();
    this.dom.emptyState.hidden = false;
    this.setTitle(NEW_CHAT_TITLE);
    this.sidebar.setActive(null);
    this.sidebar.setOpen(false);
    this.dom.input.focus();
  }

  async openConversation(conversationId) {
    if (this.streaming) {
      return;
    }
    const token = ++this.loadToken;
    let data;
    try {
      data = await this.api.conversation(conversationId);
    } catch (error) {
      this.handleApiError(error, "This conversation could not be loaded.");
      return;
    }
    if (token !== this.loadToken || this.streaming) {
      return; // another conversation was opened meanwhile
    }
    this.conversationId = data.conversation.id;
    this.setTitle(data.conversation.title || UNTITLED);
    this.dom.messages.replaceChildren(...data.messages.map(renderStoredMessage));
    this.dom.emptyState.hidden = data.messages.length > 0;
    this.sidebar.setActive(this.conversationId);
    this.sidebar.setOpen(false);
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
      this.ensureAnswer().fail(message);
      this.current = null;
    }
  }
}

new ChatPage(document.body).start();
