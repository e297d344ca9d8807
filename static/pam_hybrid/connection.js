// The chat socket's life as state: connecting, open (with a keep-alive ping), backing off between attempts (for as
// long as the page is open), offline, signed out. Pure transitions on a Step (see state.js); socket.js only opens,
// sends and reports.
"use strict";

// Capped exponential backoff with jitter: 0.5 s, 1 s, 2 s … 10 s, each ±25 %, never giving up. The first attempts come
// well within the time the server keeps an answer waiting for its socket (PAM_RESUME_GRACE_MS, 10 s by default).
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;
const JITTER = 0.25;
const AUTH_CLOSE_CODES = new Set([4401, 4403]);
// The account already has as many sockets open as the server allows (PAM_MAX_SOCKETS_PER_USER, all tabs and devices
// together): trying again quickly would only be refused again. The page says why and tries every half minute, or at
// once when it is shown again or has something to send (a tab closed elsewhere frees a place).
const CROWDED_CLOSE_CODE = 4429;
const CROWDED_RETRY_MS = 30000;
const PING_INTERVAL_MS = 25000;
// A connection counts as recovered only once it has stayed up this long, so a server that accepts and
// drops at once still runs out of attempts.
const STABLE_AFTER_MS = 5000;
const SOCKET_TIMERS = ["reconnect", "stable", "ping"];

/**
 * status: what the page shows ("connecting" | "connected" | "reconnecting" | "offline" | "disconnected"); open: a
 * socket is open now ("crowded": refused, too many sockets of this account are open); pending: a socket is opening; wasOpen: the latest socket opened before it closed; connection:
 * sockets opened so far; attempt: reconnections tried since the last stable one; offline: the browser says it has no
 * network; gaveUp: kept false (the page never gives up); authFailed: closed as signed out; stopped: the page is going
 * away.
 */
export function initialSocket() {
  return {
    status: "connecting",
    open: false,
    pending: false,
    wasOpen: false,
    connection: 0,
    attempt: 0,
    offline: false,
    gaveUp: false,
    authFailed: false,
    stopped: false,
  };
}

function update(t, fields) {
  t.set({ socket: { ...t.state.socket, ...fields } });
}

function waitingStatus(socket) {
  if (socket.offline) {
    return "offline";
  }
  return socket.attempt === 0 && socket.connection === 0 ? "connecting" : "reconnecting";
}

export function connect(t) {
  update(t, { pending: true, wasOpen: false });
  if (t.state.socket.status !== "crowded") {
    update(t, { status: waitingStatus(t.state.socket) });
  }
  t.emit({ type: "connect" });
}

export function opened(t) {
  const connection = t.state.socket.connection + 1;
  update(t, { open: true, pending: false, wasOpen: true, status: "connected", connection });
  t.disarm(...SOCKET_TIMERS);
  t.arm("stable", STABLE_AFTER_MS);
  t.arm("ping", PING_INTERVAL_MS);
}

/** The socket closed on its own: nothing runs for it any more. Returns whether it had opened. */
export function closed(t) {
  const { wasOpen } = t.state.socket;
  update(t, { open: false, pending: false });
  t.disarm(...SOCKET_TIMERS);
  return wasOpen;
}

/** The wait before reconnection `attempt` (0-based); `random` in [0, 1) spreads pages apart (0.5: none). */
export function retryDelay(attempt, random = 0.5) {
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(attempt, 16));
  return Math.min(MAX_RETRY_MS, Math.round(base * (1 + JITTER * (2 * random - 1))));
}

/** After a close: signed out, or the next attempt after a delay. */
export function reconnectLater(t, code, random = 0.5) {
  const { attempt } = t.state.socket;
  if (AUTH_CLOSE_CODES.has(code)) {
    update(t, { authFailed: true, status: "disconnected" });
    return;
  }
  if (code === CROWDED_CLOSE_CODE) {
    update(t, { attempt: attempt + 1, status: "crowded" });
    t.arm("reconnect", Math.round(CROWDED_RETRY_MS * (1 + JITTER * (2 * random - 1))));
    return;
  }
  // Any other close is retried with the backoff: 4012 (server restart), 4013 (Redis busy: try again later), 1006, 1011.
  update(t, { attempt: attempt + 1 });
  update(t, { status: waitingStatus(t.state.socket) });
  t.arm("reconnect", retryDelay(attempt, random));
}

/** Try at once instead of waiting out the backoff (something to send, back online, the page shown again); the
 * backoff starts again from its first step. */
export function retryNow(t) {
  const { open, pending, stopped, authFailed } = t.state.socket;
  if (open || pending || stopped || authFailed) {
    return;
  }
  t.disarm("reconnect");
  update(t, { attempt: 0 });
  connect(t);
}

/** The browser lost or found its network. */
export function setOffline(t, offline) {
  update(t, { offline });
  if (!t.state.socket.open && !t.state.socket.authFailed && !t.state.socket.stopped) {
    update(t, { status: waitingStatus(t.state.socket) });
  }
  if (!offline) {
    retryNow(t);
  }
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
