// The chat page's wiring: its settings from <body>, then every event (the user, the socket, timers, API replies)
// through reduce (state.js), the page drawn from the new state (render.js) and the effects run (effects.js).
"use strict";

import { Address } from "./address.js";
import { ChatApi } from "./api.js";
import { Effects } from "./effects.js";
import { newClientId } from "./format.js";
import { InflightStore } from "./inflight.js";
import { RoutePreview } from "./preview.js";
import { Shortcuts } from "./keys.js";
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
      crowded: byTestId("crowded-notice"),
      scroller: byTestId("conversation"),
      emptyState: byTestId("empty-state"),
      messages: byTestId("message-list"),
      typing: byTestId("typing-indicator"),
      form: byTestId("composer"),
      input: byTestId("composer-input"),
      route: byTestId("route-select"),
      send: byTestId("send-button"),
      stop: byTestId("stop-button"),
      exports: [byTestId("export-md"), byTestId("export-json")],
    };
    this.state = initialState({ maxChars: Number(data.maxChars) || Infinity });
    this.queue = [];
    this.running = false;
    const dispatch = (event) => this.dispatch(event);
    const sidebar = new Sidebar({
      open: (conversationId) => dispatch({ type: "open", conversationId }),
      search: (query) => dispatch({ type: "search", query }),
      more: () => dispatch({ type: "more" }),
      rename: (conversationId, title) => dispatch({ type: "rename", conversationId, title }),
      remove: (conversationId) => dispatch({ type: "remove", conversationId }),
    });
    const route = () => this.dom.route.value;
    const onRetry = (text, chosen, messageId = null) => {
      dispatch({ type: "retry", text, route: chosen || route(), messageId, clientMsgId: newClientId() });
    };
    const actions = {
      onVersion: (messageId) => dispatch({ type: "version", messageId }),
      onEdit: (messageId, content) => {
        dispatch({ type: "edit", messageId, content, route: route(), clientMsgId: newClientId() });
      },
      onRegenerate: (messageId, chosen) => {
        dispatch({ type: "regenerate", messageId, route: chosen, clientMsgId: newClientId() });
      },
      onFeedback: (messageId, value, before) => dispatch({ type: "feedback", messageId, value, before }),
    };
    const api = new ChatApi({
      conversationsUrl: data.apiConversations,
      messagesUrlTemplate: data.apiMessages,
      conversationUrlTemplate: data.apiConversation,
      branchUrlTemplate: data.apiBranch,
      exportUrlTemplate: data.apiExport,
      idPlaceholder: data.apiIdPlaceholder,
    });
    this.address = new Address({
      pageTemplate: data.pageConversation,
      placeholder: data.apiIdPlaceholder,
      home: data.pageHome || "/",
    });
    const exportUrl = (conversationId, format) => api.exportUrl(conversationId, format);
    const previewPost = (body) => api.request(data.apiRoutePreview, "POST", body);
    this.preview = new RoutePreview(byTestId("route-preview"), previewPost);
    this.view = new ChatView(this.dom, sidebar, this.state, { onRetry, actions, exportUrl });
    this.store = new InflightStore();
    const socket = new ChatSocket(socketUrl(data.wsPath), {
      onOpen: () => dispatch({ type: "socketOpen" }),
      onFrame: (frame) => dispatch({ type: "socketFrame", frame }),
      onClose: (code) => dispatch({ type: "socketClose", code, random: Math.random() }),
    });
    this.effects = new Effects(
      { socket, store: this.store, api, view: this.view, address: this.address, loginUrl: data.loginUrl },
      dispatch,
    );
    this.conversationId = data.conversationId || null;
  }

  start() {
    this.bindEvents();
    this.dispatch({ type: "load", stored: this.store.load(), conversationId: this.conversationId });
    if (!navigator.onLine) {
      this.dispatch({ type: "offline" });
    }
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
      } // Escape (stop) is one of the page's shortcuts: keys.js
    });
    input.addEventListener("input", () => {
      this.view.autosize();
      this.dispatch({ type: "draft", text: input.value });
      this.preview.update(input.value, this.state.conversationId);
    });
    stop.addEventListener("click", () => this.dispatch({ type: "stop" }));
    newChat.addEventListener("click", () => this.dispatch({ type: "newChat" }));
    const help = { helpButton: byTestId("help-button"), help: byTestId("help-dialog") };
    new Shortcuts({ input, ...help, helpClose: byTestId("help-close") }, (event) => this.dispatch(event)).bind();
    window.addEventListener("online", () => this.dispatch({ type: "online" }));
    window.addEventListener("popstate", () => {
      this.dispatch({ type: "navigate", conversationId: this.address.conversationOf(window.location.pathname) });
    });
    window.addEventListener("offline", () => this.dispatch({ type: "offline" }));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.dispatch({ type: "visible" });
      }
    });
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
    this.preview.update(input.value, this.state.conversationId); // a sent message leaves the box: its preview goes
  }
}

new ChatPage(document.body).start();
