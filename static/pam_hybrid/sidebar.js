// The conversation list: the user's conversations (the open one marked), a search box, more pages as the end of the
// list comes into view (or on Load more), rename in place and delete after a confirm dialog; slides over on small
// screens. Elements only: what the user does goes out through the callbacks.
"use strict";

import { UNTITLED } from "./conversation.js";
import { formatWhen } from "./format.js";
import { lineIcon } from "./icons.js";

const ICON_RENAME = "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4";
const ICON_DELETE = "M5 7h14M10 11v6M14 11v6M7 7l1 12h8l1-12M9 7V4h6v3";

function byTestId(testId) {
  return document.querySelector(`[data-testid="${testId}"]`);
}

function iconButton(testId, label, path) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "icon-button conversation-action";
  button.dataset.testid = testId;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.append(lineIcon(path));
  return button;
}

export class Sidebar {
  /** on: { open(id), search(text), more(), rename(id, title), remove(id) }. */
  constructor(on) {
    this.on = on;
    this.element = byTestId("sidebar");
    this.backdrop = byTestId("sidebar-backdrop");
    this.toggle = byTestId("sidebar-toggle");
    this.list = byTestId("conversation-list");
    this.empty = byTestId("conversation-empty");
    this.label = byTestId("conversation-list-label");
    this.search = byTestId("conversation-search");
    this.loadMore = byTestId("load-more");
    this.dialog = byTestId("delete-dialog");
    this.conversations = [];
    this.activeId = null;
    this.query = "";
    this.toggle.addEventListener("click", () => this.setOpen(this.element.dataset.open !== "true"));
    this.backdrop.addEventListener("click", () => this.setOpen(false));
    this.list.addEventListener("click", (event) => this.clicked(event));
    this.search.addEventListener("input", () => on.search(this.search.value));
    this.loadMore.addEventListener("click", () => on.more());
    this.dialog.addEventListener("close", () => this.confirmed());
    // More pages as the end of the list scrolls into view; the button stays for keyboards and old browsers.
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting) && !this.loadMore.hidden) {
          on.more();
        }
      }, { root: this.element, rootMargin: "120px" }).observe(this.loadMore);
    }
  }

  /** sidebar: the list as state holds it (listing.js). */
  show({ conversations, activeId, shown, nextCursor }) {
    this.conversations = conversations;
    this.activeId = activeId;
    this.query = shown;
    this.render();
    this.loadMore.hidden = nextCursor === null;
  }

  setActive(conversationId) {
    this.activeId = conversationId;
    for (const button of this.list.querySelectorAll('[data-testid="conversation-item"]')) {
      if (button.dataset.conversationId === conversationId) {
        button.setAttribute("aria-current", "true");
      } else {
        button.removeAttribute("aria-current");
      }
    }
  }

  setOpen(open) {
    this.element.dataset.open = String(open);
    this.backdrop.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  render() {
    if (this.list.contains(document.activeElement) && document.activeElement.dataset.testid === "rename-input") {
      return; // a rename in progress: redrawn when it ends
    }
    this.list.replaceChildren(...this.conversations.map((c) => this.item(c)));
    this.empty.hidden = this.conversations.length > 0;
    this.empty.textContent = this.query ? "No conversations match." : "No conversations yet.";
    this.label.textContent = this.query ? "Search results" : "Recent";
  }

  item(conversation) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation-item";
    button.dataset.testid = "conversation-item";
    button.dataset.conversationId = conversation.id;
    if (conversation.id === this.activeId) {
      button.setAttribute("aria-current", "true");
    }
    const title = document.createElement("span");
    title.className = "conversation-title";
    title.textContent = conversation.title || UNTITLED;
    const when = document.createElement("span");
    when.className = "conversation-time";
    when.textContent = formatWhen(conversation.updated_at);
    button.append(title, when);
    const item = document.createElement("li");
    item.className = "conversation-row";
    item.dataset.conversationId = conversation.id;
    const name = conversation.title || UNTITLED;
    item.append(
      button,
      iconButton("rename-conversation", `Rename “${name}”`, ICON_RENAME),
      iconButton("delete-conversation", `Delete “${name}”`, ICON_DELETE),
    );
    return item;
  }

  clicked(event) {
    const target = event.target.closest("button");
    const row = event.target.closest("li[data-conversation-id]");
    if (target === null || row === null) {
      return;
    }
    const conversationId = row.dataset.conversationId;
    const kind = target.dataset.testid;
    if (kind === "conversation-item") {
      this.on.open(conversationId);
    } else if (kind === "rename-conversation") {
      this.startRename(row, conversationId);
    } else if (kind === "delete-conversation") {
      this.askDelete(conversationId);
    }
  }

  /** The title becomes a text box: Enter (or leaving it) saves, Escape cancels. */
  startRename(row, conversationId) {
    const found = this.conversations.find((c) => c.id === conversationId);
    const input = document.createElement("input");
    input.type = "text";
    input.className = "rename-input";
    input.dataset.testid = "rename-input";
    input.maxLength = 200;
    input.value = found ? found.title : "";
    input.setAttribute("aria-label", "Conversation title");
    let done = false;
    const end = (save) => {
      if (done) {
        return;
      }
      done = true;
      const title = input.value.trim();
      input.blur();
      if (save && title) {
        this.on.rename(conversationId, title);
      }
      this.render();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        end(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        end(false);
      }
    });
    input.addEventListener("blur", () => end(true));
    row.replaceChildren(input);
    input.focus();
    input.select();
  }

  askDelete(conversationId) {
    const found = this.conversations.find((c) => c.id === conversationId);
    this.pendingDelete = conversationId;
    this.dialog.querySelector('[data-testid="delete-dialog-text"]').textContent =
      `“${(found && found.title) || UNTITLED}” and all its messages will be deleted. This cannot be undone.`;
    this.dialog.returnValue = "";
    this.dialog.showModal();
  }

  confirmed() {
    const conversationId = this.pendingDelete;
    this.pendingDelete = null;
    if (conversationId && this.dialog.returnValue === "delete") {
      this.on.remove(conversationId);
    }
  }
}
