// The chat WebSocket: JSON frames in and out, a keep-alive ping, and reconnection with backoff.
"use strict";

// 11.5 s in all: longer than the server keeps an answer waiting for its socket (PAM_RESUME_GRACE_MS, 10 s by
// default), so a page that reconnects within its attempts finds its answer still running.
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 4000];
const AUTH_CLOSE_CODES = new Set([4401, 4403]);
const PING_INTERVAL_MS = 25000;
// A connection counts as recovered only once it has stayed up this long, so a server that accepts and
// drops at once still runs out of attempts.
const STABLE_AFTER_MS = 5000;

/** The socket URL for a path on this page's host, ws: or wss: to match the page. */
export function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

/**
 * Handlers: onFrame(frame), onStatus("connecting"|"connected"|"reconnecting"|"disconnected"), onOpen() each time
 * a socket opens (first connect and every reconnect), onDrop(wasOpen) when an open or opening socket closes
 * unexpectedly, onAuthFailure() for close codes 4401/4403.
 */
export class ChatSocket {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.wasOpen = false;
    this.attempt = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.stableTimer = null;
    this.authFailed = false;
    this.gaveUp = false;
  }

  connect() {
    this.handlers.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    ws.addEventListener("open", () => this.handleOpen());
    ws.addEventListener("message", (event) => this.handleMessage(event));
    ws.addEventListener("close", (event) => this.handleClose(ws, event));
    this.ws = ws;
    this.wasOpen = false;
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

  /** After the attempts ran out, start again with a fresh set (something to send, or the browser is back online). */
  retryNow() {
    if (!this.gaveUp || this.stopped || this.authFailed) {
      return;
    }
    this.gaveUp = false;
    this.attempt = 0;
    this.connect();
  }

  /** Close for good (the page is going away): no reconnection, no status change. */
  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.ws) {
      this.ws.close(1000);
    }
  }

  handleOpen() {
    this.wasOpen = true;
    this.handlers.onStatus("connected");
    this.clearTimers();
    this.stableTimer = window.setTimeout(() => {
      this.attempt = 0;
    }, STABLE_AFTER_MS);
    this.pingTimer = window.setInterval(() => this.send({ type: "ping" }), PING_INTERVAL_MS);
    if (this.handlers.onOpen) {
      this.handlers.onOpen();
    }
  }

  clearTimers() {
    window.clearTimeout(this.retryTimer);
    window.clearTimeout(this.stableTimer);
    window.clearInterval(this.pingTimer);
  }

  handleMessage(event) {
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
    if (ws !== this.ws || this.stopped) {
      return;
    }
    this.ws = null;
    this.clearTimers();
    this.handlers.onDrop(this.wasOpen);
    if (AUTH_CLOSE_CODES.has(event.code)) {
      this.authFailed = true;
      this.handlers.onStatus("disconnected");
      this.handlers.onAuthFailure();
      return;
    }
    if (this.attempt >= RETRY_DELAYS_MS.length) {
      this.gaveUp = true;
      this.handlers.onStatus("disconnected");
      return;
    }
    const delay = RETRY_DELAYS_MS[this.attempt];
    this.attempt += 1;
    this.handlers.onStatus("reconnecting");
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }
}
