// The page's address: "/" for a new chat, "/c/<id>/" for a conversation (the server's own template, from <body>).
"use strict";

export class Address {
  /** pageTemplate: a conversation's address with `placeholder` where its id goes; home: the new chat's. */
  constructor({ pageTemplate, placeholder, home }) {
    const at = pageTemplate.indexOf(placeholder);
    this.prefix = pageTemplate.slice(0, at);
    this.suffix = pageTemplate.slice(at + placeholder.length);
    this.home = home;
  }

  path(conversationId) {
    return conversationId ? `${this.prefix}${encodeURIComponent(conversationId)}${this.suffix}` : this.home;
  }

  /** The conversation an address names, or null (a new chat). */
  conversationOf(pathname) {
    if (!pathname.startsWith(this.prefix) || !pathname.endsWith(this.suffix)) {
      return null;
    }
    const id = pathname.slice(this.prefix.length, pathname.length - this.suffix.length);
    return id && !id.includes("/") ? decodeURIComponent(id) : null;
  }

  /** Make the tab's address the conversation's: a new history entry ("push") or in place ("replace"). */
  go(conversationId, mode) {
    const path = this.path(conversationId);
    if (window.location.pathname === path) {
      return;
    }
    const entry = { conversationId: conversationId || null };
    if (mode === "push") {
      window.history.pushState(entry, "", path);
    } else {
      window.history.replaceState(entry, "", path);
    }
  }
}
