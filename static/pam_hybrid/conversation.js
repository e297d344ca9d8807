// Conversations: a new chat, one opened from the sidebar or after a reload (its answer in flight picked up again), the
// sidebar's list, and what the history API's replies and failures do. Pure transitions on a Step.
"use strict";

import { park, parkedIn } from "./background.js";
import { resumedBubble } from "./bubble.js";
import { armStallCheck, finish, flush, follow, notice } from "./flow.js";
import { planHistory } from "./history.js";
import * as listing from "./listing.js";

export const NEW_CHAT_TITLE = "New chat";
export const UNTITLED = "Untitled conversation";
const LOAD_FAILED_TEXT = "This conversation could not be loaded.";

/** A new chat; `via` "pop" when back/forward brought the page here (the address is already "/"). An answer still
 * streaming is left to stream on (background.js). */
export function newChat(t, via = "user") {
  park(t);
  t.set({
    loadToken: t.state.loadToken + 1,
    conversationId: null,
    title: NEW_CHAT_TITLE,
    list: { key: t.key(), messages: [], resumeIndex: -1, retry: null },
    question: null,
    answer: null,
    sidebar: { ...t.state.sidebar, activeId: null },
  });
  t.emit({ type: "forget" }); // an answer kept for a reload after the socket gave up: the user has moved on
  if (via !== "pop") {
    t.emit({ type: "location", conversationId: null, mode: "push" });
  }
  t.emit({ type: "closeSidebar" });
  t.emit({ type: "focus" });
}

/** Delete a conversation (the user confirmed): if it is the open one, a new chat takes its place. */
export function remove(t, conversationId) {
  listing.remove(t, { conversationId });
  if (conversationId === t.state.conversationId) {
    if (t.state.background !== null && t.state.background.conversationId === conversationId) {
      t.set({ background: null }); // the server stops its answer: nothing to come back to
    }
    newChat(t);
  }
}

/** Back/forward to an address: `conversationId` null is a new chat. */
export function navigate(t, conversationId) {
  if (conversationId === t.state.conversationId) {
    return;
  }
  if (conversationId === null) {
    newChat(t, "pop");
  } else {
    open(t, conversationId, null, "pop");
  }
}

/** After a reload: show what this tab was waiting for, and pick its answer up again. */
export function restore(t, stored) {
  if (stored.conversationId) {
    open(t, stored.conversationId, stored, "load");
    return;
  }
  // The first message of a new conversation, not acknowledged before the reload: show it and send it again.
  const question = { key: t.key(), text: stored.userText, status: stored.messageId ? "complete" : "queued" };
  t.set({ question, scroll: t.state.scroll + 1 });
  follow(t, { ...stored, lastSeq: -1 });
  flush(t);
}

/**
 * Show a conversation; `stored` is this tab's record of an answer in flight in it (after a reload, or one left
 * streaming there when the user switched away). `via`: "user" (a new entry in the tab's history), "pop"
 * (back/forward), "load", or "refresh" (the same conversation drawn again; failures stay quiet).
 */
export function open(t, conversationId, stored = null, via = "user") {
  park(t);
  const token = t.state.loadToken + 1;
  t.set({ loadToken: token });
  const own = stored || parkedIn(t.state, conversationId);
  t.emit({ type: "fetch", purpose: "open", conversationId, token, stored: own, via });
}

/** Show another version: the branch through `messageId`. */
export function branch(t, messageId) {
  const { conversationId, phase } = t.state;
  if (phase !== "idle" || !conversationId) {
    return;
  }
  const token = t.state.loadToken + 1;
  t.set({ loadToken: token });
  t.emit({ type: "fetch", purpose: "branch", conversationId, messageId, token, stored: null, via: "refresh" });
}

function opened(t, { token, stored, via }, data) {
  if (token !== t.state.loadToken || t.state.phase !== "idle") {
    return; // another conversation was opened meanwhile
  }
  if (stored === null) {
    t.emit({ type: "forget" }); // as in newChat
  }
  show(t, data, stored);
  t.emit({ type: "location", conversationId: data.conversation.id, mode: via === "user" ? "push" : "replace" });
}

function show(t, data, stored) {
  const { messages } = data;
  const plan = planHistory(messages, stored);
  const conversationId = data.conversation.id;
  const resumed = plan.resumeIndex >= 0 && plan.resumeIndex < messages.length;
  const tracksQuestion = plan.record !== null && !plan.record.messageId;
  t.set({
    conversationId,
    title: data.conversation.title || (messages.length > 0 ? UNTITLED : NEW_CHAT_TITLE),
    list: { key: t.key(), messages, resumeIndex: plan.resumeIndex, retry: plan.retry },
    answer: resumed ? resumedBubble(t.key(), messages[plan.resumeIndex]) : null,
    // Our own message when the server has not saved it yet, shown after the history; queued until it is sent.
    question: plan.appendUser
      ? { key: t.key(), text: plan.appendUser, status: tracksQuestion ? "queued" : "complete" }
      : null,
    sidebar: { ...t.state.sidebar, activeId: conversationId },
  });
  t.emit({ type: "closeSidebar" });
  if (plan.record !== null) {
    follow(t, { ...plan.record, conversationId: plan.record.conversationId || conversationId });
    flush(t);
  } else if (stored !== null) {
    t.emit({ type: "forget" }); // it ended meanwhile: the history shows it as saved
  }
  t.set({ scroll: t.state.scroll + 1 });
  t.emit({ type: "focus" });
}

/** The stall check's answer: if the saved answer has ended, show it as saved; else keep waiting. */
function stallChecked(t, { turn }, data) {
  const { phase, record } = t.state;
  if (phase === "idle" || t.state.turn !== turn) {
    return;
  }
  const row = data && data.messages.find((m) => m.id === record.messageId);
  if (!row || row.status === "streaming") {
    armStallCheck(t);
    return;
  }
  finish(t);
  show(t, data, null);
}

function failed(t, error, message) {
  if (error === "unauthorized") {
    t.emit({ type: "login" });
  } else if (message) {
    notice(t, message);
  }
}

/** A reply from the API, by what it was asked for (see effects.js). */
export function fetched(t, request, data) {
  if (request.purpose === "sidebar") {
    listing.listed(t, request, data);
  } else if (request.purpose === "sidebarMore") {
    listing.paged(t, request, data);
  } else if (request.purpose === "rename") {
    listing.renamed(t, data);
  } else if (request.purpose === "open" || request.purpose === "branch") {
    opened(t, request, data);
  } else if (request.purpose === "stall") {
    stallChecked(t, request, data);
  }
}

/** A failed request; `error` is "unauthorized", "not_found" or "failed". */
export function fetchFailed(t, request, error) {
  if (request.via === "refresh") {
    failed(t, error, null);
  } else if (request.purpose === "open") {
    if (request.stored === null || error !== "not_found") {
      failed(t, error, LOAD_FAILED_TEXT);
      return;
    }
    // A new conversation is saved once the model accepts its first message: not yet.
    opened(t, request, { conversation: { id: request.conversationId, title: "" }, messages: [] });
  } else if (request.purpose === "stall") {
    stallChecked(t, request, null); // asked again at the next check
  } else if (request.purpose === "rename" || request.purpose === "remove") {
    failed(t, error, error === "not_found" ? null : "That change could not be saved.");
    listing.refresh(t); // the list as the server has it
  } else {
    failed(t, error, null); // the sidebar, or whether a refused socket means we are signed out
  }
}
