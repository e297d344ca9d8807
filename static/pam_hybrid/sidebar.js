// The conversation list: renders the user's conversations, marks the open one, slides over on small screens.
"use strict";

import { UNTITLED } from "./conversation.js";
import { formatWhen } from "./format.js";

function byTestId(testId) {
  return document.querySelector(`[data-testid="${testId}"]`);
}

export class Sidebar {
  /** onOpen(conversationId) when a conversation is picked. */
  constructor(onOpen) {
    this.element = byTestId("sidebar");
    this.backdrop = byTestId("sidebar-backdrop");
    this.toggle = byTestId("sidebar-toggle");
    this.list = byTestId("conversation-list");
    this.empty = byTestId("conversation-empty");
    this.newChat = byTestId("new-chat");
    this.conversations = [];
    this.activeId = null;
    this.locked = false;
    this.toggle.addEventListener("click", () => this.setOpen(this.element.dataset.open !== "true"));
    this.backdrop.addEventListener("click", () => this.setOpen(false));
    this.list.addEventListener("click", (event) => {
      const item = event.target.closest("[data-conversation-id]");
      if (item && !this.locked) {
        onOpen(item.dataset.conversationId);
      }
    });
  }

  show(conversations, activeId) {
    this.conversations = conversations;
    this.activeId = activeId;
    this.render();
  }

  setActive(conversationId) {
    this.activeId = conversationId;
    this.render();
  }

  /** While an answer streams, switching conversations is not allowed. */
  setLocked(locked) {
    this.locked = locked;
    this.newChat.disabled = locked;
    for (const button of this.list.querySelectorAll("button")) {
      button.disabled = locked;
    }
  }

  setOpen(open) {
    this.element.dataset.open = String(open);
    this.backdrop.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  render() {
    this.list.replaceChildren(...this.conversations.map((c) => this.item(c)));
    this.empty.hidden = this.conversations.length > 0;
  }

  item(conversation) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation-item";
    button.dataset.testid = "conversation-item";
    button.dataset.conversationId = conversation.id;
    button.disabled = this.locked;
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
    item.append(button);
    return item;
  }
}
