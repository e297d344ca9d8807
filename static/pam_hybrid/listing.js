// The sidebar's list as state: the conversations shown (a first page, more pages as asked for), the search over
// titles and messages (debounced), renames and deletions. Pure transitions on a Step (see state.js).
"use strict";

const SEARCH_DEBOUNCE_MS = 250;

/** conversations: as the API lists them; activeId: the open one; query: the search asked for; shown: the search the
 * list shows; nextCursor: where the
 * next page starts (null: none); loading: a next page asked for; token: counts list requests, so a late page of an
 * earlier search is dropped. */
export function initialSidebar() {
  return { conversations: [], activeId: null, query: "", shown: "", nextCursor: null, loading: false, token: 0 };
}

function update(t, fields) {
  t.set({ sidebar: { ...t.state.sidebar, ...fields } });
}

/** Ask for the first page again (after an answer, a rename elsewhere…), for the search shown. */
export function refresh(t) {
  const { query, token } = t.state.sidebar;
  update(t, { token: token + 1 });
  t.emit({ type: "fetch", purpose: "sidebar", q: query, token: token + 1 });
}

/** The search box changed: search once typing pauses (an empty box brings the whole list back). */
export function search(t, { query }) {
  const q = query.trim();
  if (q === t.state.sidebar.query) {
    return;
  }
  update(t, { query: q });
  t.arm("search", SEARCH_DEBOUNCE_MS);
}

/** The end of the list came into view (or Load more was pressed). */
export function more(t) {
  const { nextCursor, loading, query, token } = t.state.sidebar;
  if (nextCursor === null || loading) {
    return;
  }
  update(t, { loading: true });
  t.emit({ type: "fetch", purpose: "sidebarMore", q: query, cursor: nextCursor, token });
}

/** A first page: it replaces what the list showed, keeping the older pages already loaded beyond it. */
export function listed(t, request, data) {
  const { sidebar } = t.state;
  if (request.token !== undefined && request.token !== sidebar.token) {
    return; // an earlier search's answer
  }
  if (request.token === undefined && sidebar.query !== "") {
    return; // a plain refresh while search results show
  }
  const fresh = data.conversations || [];
  const ids = new Set(fresh.map((c) => c.id));
  const tail = sidebar.conversations.slice(fresh.length).filter((c) => !ids.has(c.id));
  const q = request.q || "";
  const keepTail = tail.length > 0 && sidebar.shown === q;
  update(t, {
    conversations: keepTail ? [...fresh, ...tail] : fresh,
    nextCursor: keepTail ? sidebar.nextCursor : data.next_cursor || null,
    activeId: t.state.conversationId,
    shown: q,
    loading: false,
  });
  retitle(t);
}

/** The next page arrived. */
export function paged(t, request, data) {
  const { sidebar } = t.state;
  if (request.token !== sidebar.token) {
    return;
  }
  const known = new Set(sidebar.conversations.map((c) => c.id));
  const added = (data.conversations || []).filter((c) => !known.has(c.id));
  update(t, { conversations: [...sidebar.conversations, ...added], nextCursor: data.next_cursor || null, loading: false });
}

/** The open conversation's title as the list (or a rename) has it. */
function retitle(t) {
  const found = t.state.sidebar.conversations.find((c) => c.id === t.state.conversationId);
  if (found && found.title) {
    t.set({ title: found.title });
  }
}

function replaced(t, conversationId, change) {
  const conversations = t.state.sidebar.conversations.map((c) => (c.id === conversationId ? change(c) : c));
  update(t, { conversations });
}

/** Rename at once on the page; the server's answer (its tidied title) follows. */
export function rename(t, { conversationId, title }) {
  const clean = title.split(/\s+/).filter(Boolean).join(" ");
  const before = t.state.sidebar.conversations.find((c) => c.id === conversationId);
  if (!clean || (before && before.title === clean)) {
    return;
  }
  replaced(t, conversationId, (c) => ({ ...c, title: clean }));
  retitle(t);
  t.emit({ type: "fetch", purpose: "rename", conversationId, title: clean });
}

export function renamed(t, data) {
  const saved = data && data.conversation;
  if (saved) {
    replaced(t, saved.id, (c) => ({ ...c, title: saved.title }));
    retitle(t);
  }
}

/** Delete (confirmed by the user): gone from the list at once; the open conversation gives way to a new chat. */
export function remove(t, { conversationId }) {
  const conversations = t.state.sidebar.conversations.filter((c) => c.id !== conversationId);
  update(t, { conversations });
  t.emit({ type: "fetch", purpose: "remove", conversationId });
}

export const TIMERS = {
  search: (t) => refresh(t),
};
