// The page's HTTP side: the sidebar's conversation list (search, pages), one conversation's branch, renaming,
// deleting, switching versions, and the export links. Writes carry Django's CSRF token from its cookie.
"use strict";

export class UnauthorizedError extends Error {}

/** The conversation does not exist (yet: a new one is saved once the model accepts its first message). */
export class NotFoundError extends Error {}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ChatApi {
  /** config: { conversationsUrl, messagesUrlTemplate, conversationUrlTemplate, branchUrlTemplate, exportUrlTemplate,
   * idPlaceholder } (templates hold the placeholder id where a conversation's id goes). */
  constructor(config) {
    this.config = config;
  }

  url(template, conversationId) {
    return template.replace(this.config.idPlaceholder, encodeURIComponent(conversationId));
  }

  /** A page of the list: { conversations: [{id, title, updated_at}], next_cursor }. */
  async conversations({ q = "", cursor = null } = {}) {
    const params = new URLSearchParams();
    if (q) {
      params.set("q", q);
    }
    if (cursor) {
      params.set("cursor", cursor);
    }
    const query = params.toString();
    return this.request(query ? `${this.config.conversationsUrl}?${query}` : this.config.conversationsUrl);
  }

  /** { conversation: {id, title}, messages: [...] }: the current branch. */
  async conversation(conversationId) {
    return this.request(this.url(this.config.messagesUrlTemplate, conversationId));
  }

  /** The branch through `messageId` (to its newest leaf), as conversation() answers. */
  async branch(conversationId, messageId) {
    return this.request(this.url(this.config.branchUrlTemplate, conversationId), "POST", { message_id: messageId });
  }

  /** { conversation: {id, title, updated_at} } with the title as the server keeps it. */
  async rename(conversationId, title) {
    return this.request(this.url(this.config.conversationUrlTemplate, conversationId), "PATCH", { title });
  }

  async remove(conversationId) {
    return this.request(this.url(this.config.conversationUrlTemplate, conversationId), "DELETE");
  }

  /** The download link for a conversation: format "md" or "json". */
  exportUrl(conversationId, format) {
    return `${this.url(this.config.exportUrlTemplate, conversationId)}?format=${encodeURIComponent(format)}`;
  }

  async request(url, method = "GET", body = undefined) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken();
    }
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (response.status === 401) {
      throw new UnauthorizedError("Signed out");
    }
    if (response.status === 404) {
      throw new NotFoundError("Not found");
    }
    if (!response.ok) {
      throw new Error(`Request failed (${response.status})`);
    }
    return response.status === 204 ? null : response.json();
  }
}
