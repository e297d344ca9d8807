// The chat page's wiring: its settings from <body>, then every event (the user, the socket, timers, API replies)
// through reduce (state.js), the page drawn from the new state (render.js) and the effects run (effects.js).
"use strict";

import { ChatApi } from "./api.js";
import { Effects } from "./effects.js";
import { newClientId } from "./format.js";
import { InflightStore } from "./inflight.js";
import { ChatView } from "./render.js";
import { Sidebar } from "./sidebar.js";
import { ChatSocket, socketUrl } from "./socket.js";
import { initialState, reduce } from "./state.js";

function byTestId(testId) {
  return document.querySelector(`[data-testid="${testId}"]`);
}

class ChatPage {
  constructor(body) {
    const data = body.dataset;
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
    this.state = initialState({ maxChars: Number(data.maxChars) || Infinity });
    this.queue = [];
    this.running = false;
    const dispatch = (event) => this.dispatch(event);
    const sidebar = new Sidebar((conversationId) => dispatch({ type: "open", conversationId }));
    const onRetry = (text, route) => {
      dispatch({ type: "retry", text, route: route || this.dom.route.value, clientMsgId: newClientId() });
    };
    this.view = new ChatView(this.dom, sidebar, this.state, { onRetry });
    this.store = new InflightStore();
    const socket = new ChatSocket(socketUrl(data.wsPath), {
      onOpen: () => dispatch({ type: "socketOpen" }),
      onFrame: (frame) => dispatch({ type: "socketFrame", frame }),
      onClose: (code) => dispatch({ type: "socketClose", code }),
    });
    const api = new ChatApi({
      conversationsUrl: data.apiConversations,
      messagesUrlTemplate: data.apiMessages,
      idPlaceholder: data.apiIdPlaceholder,
    });
    this.effects = new Effects({ socket, store: this.store, api, view: this.view, loginUrl: data.loginUrl }, dispatch);
  }

  start() {
    this.bindEvents();
    this.dispatch({ type: "load", stored: this.store.load() });
  }

  /** Events are handled one at a time, in order: one raised while another is handled waits its turn. */
  dispatch(event) {
    this.queue.push(event);
    if (this.running) {
      return;
    }
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const { state, effects } = reduce(this.state, this.queue.shift());
        this.state = state;
        this.view.render(state);
        for (const effect of effects) {
          this.effects.run(effect);
        }
      }
    } finally {
      this.running = false;
    }
  }

  bindEvents() {
    const { form, input, stop, newChat } = this.dom;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      } else if (event.key === "Escape") {
        this.dispatch({ type: "stop" });
      }
    });
    input.addEventListener("input", () => {
      this.view.autosize();
      this.dispatch({ type: "draft", text: input.value });
    });
    stop.addEventListener("click", () => this.dispatch({ type: "stop" }));
    newChat.addEventListener("click", () => this.dispatch({ type: "newChat" }));
    window.addEventListener("online", () => this.dispatch({ type: "online" }));
    window.addEventListener("pagehide", () => this.dispatch({ type: "pagehide" }));
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) {
        window.location.reload(); // back/forward cache: the socket was closed on pagehide
      }
    });
  }

  send() {
    const { input, route } = this.dom;
    this.dispatch({ type: "send", content: input.value, route: route.value, clientMsgId: newClientId() });
  }
}

new ChatPage(document.body).start();
