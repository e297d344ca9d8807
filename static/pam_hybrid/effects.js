// Carries out what reduce asks for, in one place: the socket, every timer, sessionStorage, the history API, the way to
// the login page, and the page's own commands. Replies (a timer firing, an API answer) come back as events.
"use strict";

import { NotFoundError, UnauthorizedError } from "./api.js";

function errorKind(error) {
  if (error instanceof UnauthorizedError) {
    return "unauthorized";
  }
  return error instanceof NotFoundError ? "not_found" : "failed";
}

export class Effects {
  /** ports: { socket: ChatSocket, store: InflightStore, api: ChatApi, view: ChatView, address: Address, loginUrl };
   * dispatch(event). */
  constructor(ports, dispatch) {
    this.ports = ports;
    this.dispatch = dispatch;
    this.timers = new Map(); // name → the browser's timeout id
  }

  run(effect) {
    const { socket, store, view } = this.ports;
    switch (effect.type) {
      case "connect":
        return socket.connect();
      case "send":
        return socket.send(effect.frame);
      case "close":
        return socket.close();
      case "startTimer":
        return this.startTimer(effect.name, effect.ms);
      case "clearTimer":
        return this.clearTimer(effect.name);
      case "save":
        return store.save(effect.record);
      case "saveSeq":
        return store.saveSeq(effect.seq);
      case "forget":
        return store.clear();
      case "fetch":
        return this.fetch(effect);
      case "location":
        return this.ports.address.go(effect.conversationId, effect.mode);
      case "login":
        return this.goToLogin();
      case "focus":
        return view.focus();
      case "composer":
        return view.setComposer(effect.text);
      case "closeSidebar":
        return view.closeSidebar();
      case "feedbackShown":
        return view.showFeedback(effect.messageId, effect.value);
      default:
        throw new Error(`Unknown effect ${effect.type}`);
    }
  }

  startTimer(name, ms) {
    this.clearTimer(name);
    const id = window.setTimeout(() => {
      this.timers.delete(name);
      this.dispatch({ type: "timer", name });
    }, ms);
    this.timers.set(name, id);
  }

  clearTimer(name) {
    window.clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }

  /** effect.purpose: "sidebar", "sidebarMore" or "signedIn" (the conversation list), "open", "stall" or "branch" (one
   * conversation), "rename" or "remove" (a change to one). */
  call(request) {
    const { api } = this.ports;
    const { purpose, conversationId } = request;
    switch (purpose) {
      case "branch":
        return api.branch(conversationId, request.messageId);
      case "rename":
        return api.rename(conversationId, request.title);
      case "remove":
        return api.remove(conversationId);
      default:
        return conversationId
          ? api.conversation(conversationId)
          : api.conversations({ q: request.q || "", cursor: request.cursor || null });
    }
  }

  async fetch(request) {
    let data;
    try {
      data = await this.call(request);
    } catch (error) {
      this.dispatch({ type: "fetchFailed", request, error: errorKind(error) });
      return;
    }
    this.dispatch({ type: "fetched", request, data });
  }

  goToLogin() {
    const { loginUrl } = this.ports;
    window.location.assign(`${loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
  }
}
