// The chat socket's life as state: connecting, open (with a keep-alive ping), backing off between attempts, given up,
// signed out. Pure transitions on a Step (see state.js); socket.js only opens, sends and reports.
"use strict";

// 11.5 s in all: longer than the server keeps an answer waiting for its socket (PAM_RESUME_GRACE_MS, 10 s by
// default), so a page that reconnects within its attempts finds its answer still running.
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 4000];
const AUTH_CLOSE_CODES = new Set([4401, 4403]);
const PING_INTERVAL_MS = 25000;
// A connection counts as recovered only once it has stayed up this long, so a server that accepts and
// drops at once still runs out of attempts.
const STABLE_AFTER_MS = 5000;
const SOCKET_TIMERS = ["reconnect", "stable", "ping"];

/**
 * status: what the page shows ("connecting" | "connected" | "reconnecting" | "disconnected"); open: a socket is open
 * now; wasOpen: the latest socket opened before it closed; connection: sockets opened so far; attempt: reconnections
 * tried since the last stable one; gaveUp: out of attempts; authFailed: closed as signed out; stopped: the page is
 * going away.
 */
export function initialSocket() {
  return {
    status: "connecting",
    open: false,
    wasOpen: false,
    connection: 0,
    attempt: 0,
    gaveUp: false,
    authFailed: false,
    stopped: false,
  };
}

function update(t, fields) {
  t.set({ socket: { ...t.state.socket, ...fields } });
}

export function connect(t) {
  update(t, { status: t.state.socket.attempt === 0 ? "connecting" : "reconnecting", wasOpen: false });
  t.emit({ type: "connect" });
}

export function opened(t) {
  update(t, { open: true, wasOpen: true, status: "connected", connection: t.state.socket.connection + 1 });
  t.disarm(...SOCKET_TIMERS);
  t.arm("stable", STABLE_AFTER_MS);
  t.arm("ping", PING_INTERVAL_MS);
}

/** The socket closed on its own: nothing runs for it any more. Returns whether it had opened. */
export function closed(t) {
  const { wasOpen } = t.state.socket;
  update(t, { open: false });
  t.disarm(...SOCKET_TIMERS);
  return wasOpen;
}

/** After a close: signed out, out of attempts, or the next attempt after a delay. */
export function reconnectLater(t, code) {
  const { attempt } = t.state.socket;
  if (AUTH_CLOSE_CODES.has(code)) {
    update(t, { authFailed: true, status: "disconnected" });
  } else if (attempt >= RETRY_DELAYS_MS.length) {
    update(t, { gaveUp: true, status: "disconnected" });
  } else {
    update(t, { attempt: attempt + 1, status: "reconnecting" });
    t.arm("reconnect", RETRY_DELAYS_MS[attempt]);
  }
}

/** After the attempts ran out, start again with a fresh set (something to send, or the browser is back online). */
export function retryNow(t) {
  const { gaveUp, stopped, authFailed } = t.state.socket;
  if (!gaveUp || stopped || authFailed) {
    return;
  }
  update(t, { gaveUp: false, attempt: 0 });
  connect(t);
}

/** Close for good (the page is going away): no reconnection, no status change. */
export function stop(t) {
  update(t, { stopped: true });
  t.disarm(...SOCKET_TIMERS);
  t.emit({ type: "close" });
}

export const TIMERS = {
  reconnect: (t) => connect(t),
  stable: (t) => update(t, { attempt: 0 }),
  ping: (t) => {
    if (t.state.socket.open) {
      t.emit({ type: "send", frame: { type: "ping" } });
      t.arm("ping", PING_INTERVAL_MS);
    }
  },
};
