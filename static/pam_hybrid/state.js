// The chat page's state, its phases, and the one pure transition reduce(state, event) → { state, effects }: no DOM and
// no I/O here or in the modules it calls (connection.js, flow.js, chunks.js, conversation.js, bubble.js, history.js).
"use strict";

import * as background from "./background.js";
import * as branches from "./branches.js";
import { frameIn } from "./chunks.js";
import * as connection from "./connection.js";
import * as conversation from "./conversation.js";
import * as flow from "./flow.js";
import * as listing from "./listing.js";

/** The answer flow: nothing in flight; waiting for a socket to send on; sent, nothing back yet; the answer arriving;
 * a stop asked for, not yet confirmed. */
export const PHASES = Object.freeze(["idle", "queued", "sent", "streaming", "stopping"]);

/**
 * phase: see PHASES. record: the answer in flight, as sessionStorage keeps it (inflight.js), or null when idle; turn:
 * counts records followed, so a late reply about an earlier one is ignored; sentOn: the socket (counted by
 * socket.connection) its frame last went out on. question: our message as shown, { key, text, status: "queued" |
 * "complete" | "removed" }; answer: the answer bubble (bubble.js). socket: connection.js. timers: name → { ms, ... }
 * for every timer running; effects.js keeps the real ones in step. list: the message list as last rebuilt (history
 * rows, the one being resumed, the one offering Retry); sidebar: the list (listing.js); background: the record of an
 * answer left streaming in another conversation (background.js), or null. question.messageId / .replaces: its saved
 * id once `start` names it; the question (and what followed) an edit replaces. draft: the
 * composer's text. scroll: bumped to scroll to the bottom wherever the reader is. serial hands out keys.
 */
export function initialState({ maxChars = Infinity } = {}) {
  return {
    phase: "idle",
    record: null,
    turn: 0,
    sentOn: -1,
    question: null,
    answer: null,
    socket: connection.initialSocket(),
    timers: {},
    conversationId: null,
    title: null,
    background: null,
    list: { key: 0, messages: [], resumeIndex: -1, retry: null },
    sidebar: listing.initialSidebar(),
    draft: "",
    maxChars,
    loadToken: 0,
    scroll: 0,
    serial: 0,
  };
}

/** One transition in the making: the state so far and the effects asked for. */
class Step {
  constructor(state) {
    this.state = state;
    this.effects = [];
  }

  set(fields) {
    this.state = { ...this.state, ...fields };
  }

  emit(effect) {
    this.effects.push(effect);
  }

  /** (Re)start a timer; `data` comes back to its handler when it fires. */
  arm(name, ms, data = {}) {
    this.set({ timers: { ...this.state.timers, [name]: { ms, ...data } } });
  }

  disarm(...names) {
    const timers = { ...this.state.timers };
    for (const name of names) {
      delete timers[name];
    }
    this.set({ timers });
  }

  key() {
    this.set({ serial: this.state.serial + 1 });
    return this.state.serial;
  }
}

const TIMERS = { ...connection.TIMERS, ...flow.TIMERS, ...listing.TIMERS };

const HANDLERS = {
  /** The page opened, on `conversationId`'s address (null: a new chat); `stored` is what a reload left behind. */
  load(t, { stored, conversationId = null }) {
    connection.connect(t);
    listing.refresh(t);
    if (stored !== null && (!stored.conversationId || !conversationId || stored.conversationId === conversationId)) {
      conversation.restore(t, stored);
    } else if (conversationId) {
      conversation.open(t, conversationId, null, "load");
    }
    t.emit({ type: "focus" });
  },
  draft(t, { text }) {
    t.set({ draft: text });
  },
  send(t, { content, route, clientMsgId }) {
    if (!flow.canSend(t.state, content)) {
      return;
    }
    t.set({ draft: "" });
    t.emit({ type: "composer", text: "" });
    flow.submit(t, { content, route, clientMsgId });
    connection.retryNow(t); // if it had given up, try again: there is something to send
  },
  /** A Retry button: a new version of the failed answer (its question again if nothing was saved). */
  retry(t, event) {
    branches.retry(t, event);
    connection.retryNow(t);
  },
  regenerate(t, event) {
    branches.regenerate(t, event);
    connection.retryNow(t);
  },
  edit(t, event) {
    branches.edit(t, event);
    connection.retryNow(t);
  },
  /** A thumb pressed on an answer: sent to be stored (the server's `feedback` frame confirms it); with no socket to
   * send on, the thumbs go back to how they were. */
  feedback(t, { messageId, value, before }) {
    if (t.state.socket.open) {
      t.emit({ type: "send", frame: { type: "feedback", message_id: messageId, value } });
    } else {
      t.emit({ type: "feedbackShown", messageId, value: before });
    }
  },
  version: (t, event) => branches.version(t, event),
  navigate: (t, { conversationId }) => conversation.navigate(t, conversationId),
  search: (t, { query }) => listing.search(t, { query }),
  more: (t) => listing.more(t),
  rename: (t, event) => listing.rename(t, event),
  remove: (t, { conversationId }) => conversation.remove(t, conversationId),
  stop: (t) => flow.stop(t),
  newChat: (t) => conversation.newChat(t),
  open: (t, { conversationId }) => conversation.open(t, conversationId),
  online: (t) => connection.setOffline(t, false),
  offline: (t) => connection.setOffline(t, true),
  /** The page is shown again (a tab brought back, a phone woken): reconnect now rather than after the backoff. */
  visible: (t) => connection.retryNow(t),
  pagehide: (t) => connection.stop(t),
  socketOpen(t) {
    connection.opened(t);
    background.reopened(t);
    flow.flush(t);
  },
  socketFrame: (t, { frame }) => frameIn(t, frame),
  socketClose(t, { code, random }) {
    if (t.state.socket.stopped) {
      return;
    }
    if (!connection.closed(t)) {
      // A refused handshake hides the server's close code (browsers report 1006): ask whether we are signed out.
      t.emit({ type: "fetch", purpose: "signedIn" });
    }
    flow.dropped(t);
    connection.reconnectLater(t, code, random);
    if (t.state.socket.status === "disconnected") {
      flow.gaveUp(t);
    }
    if (t.state.socket.authFailed) {
      t.emit({ type: "login" });
    }
  },
  timer(t, { name }) {
    const timer = t.state.timers[name];
    if (timer !== undefined) {
      t.disarm(name);
      TIMERS[name](t, timer);
    }
  },
  fetched: (t, { request, data }) => conversation.fetched(t, request, data),
  fetchFailed: (t, { request, error }) => conversation.fetchFailed(t, request, error),
};

/** The timers to start and clear for a change of `state.timers` (a re-armed timer starts again). */
function timerEffects(before, after) {
  const effects = [];
  for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (before[name] === after[name]) {
      continue;
    }
    const timer = after[name];
    effects.push(timer === undefined ? { type: "clearTimer", name } : { type: "startTimer", name, ms: timer.ms });
  }
  return effects;
}

/** The state after `event`, and what to do about it (see effects.js). `state` itself is never changed. */
export function reduce(state, event) {
  const t = new Step(state);
  const handler = Object.hasOwn(HANDLERS, event.type) ? HANDLERS[event.type] : null;
  if (handler !== null) {
    handler(t, event);
  }
  const running = { ...state.timers };
  if (event.type === "timer") {
    delete running[event.name]; // it has fired: nothing to clear
  }
  return { state: t.state, effects: [...t.effects, ...timerEffects(running, t.state.timers)] };
}
