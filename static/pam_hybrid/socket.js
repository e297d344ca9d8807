// The chat WebSocket as a plain transport: opens one socket at a time, sends and receives JSON frames, and reports
// open, frames and close. When to reconnect, ping or give up is decided in connection.js.
"use strict";

/** The socket URL for a path on this page's host, ws: or wss: to match the page. */
export function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

/** Handlers: onOpen(), onFrame(frame) for each JSON object received, onClose(code) when the socket closes by itself. */
export class ChatSocket {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
  }

  connect() {
    const ws = new WebSocket(this.url);
    ws.addEventListener("open", () => this.handleOpen(ws));
    ws.addEventListener("message", (event) => this.handleMessage(ws, event));
    ws.addEventListener("close", (event) => this.handleClose(ws, event));
    this.ws = ws;
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a frame; false when the socket is not open. */
  send(frame) {
    if (!this.isOpen()) {
      return false;
    }
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Close for good: its close is not reported. */
  close() {
    const { ws } = this;
    this.ws = null;
    if (ws !== null) {
      ws.close(1000);
    }
  }

  handleOpen(ws) {
    if (ws === this.ws) {
      this.handlers.onOpen();
    }
  }

  handleMessage(ws, event) {
    if (ws !== this.ws) {
      return;
    }
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame !== null && typeof frame === "object") {
      this.handlers.onFrame(frame);
    }
  }

  handleClose(ws, event) {
    if (ws === this.ws) {
      this.ws = null;
      this.handlers.onClose(event.code);
    }
  }
}
