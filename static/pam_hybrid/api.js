// Reads for the page: the sidebar's conversation list and one conversation's history.
"use strict";

export class UnauthorizedError extends Error {}

/** The conversation does not exist (yet: a new one is saved once the model accepts its first message). */
export class NotFoundError extends Error {}

export class ChatApi {
  /** config: { conversationsUrl, messagesUrlTemplate, idPlaceholder } */
  constructor(config) {
    this.config = config;
  }

  async conversations() {
    const body = await this.getJson(this.config.conversationsUrl);
    return body.conversations;
  }

  /** { conversation: {id, title}, messages: [...] } */
  async conversation(conversationId) {
    const url = this.config.messagesUrlTemplate.replace(this.config.idPlaceholder, encodeURIComponent(conversationId));
    return this.getJson(url);
  }

  async getJson(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
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
    return response.json();
  }
}
