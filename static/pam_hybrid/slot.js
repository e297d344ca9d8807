// Where the answer being streamed shows in the message list: appended on its first frame, or, for an answer picked
// up again, in place of its saved checkpoint once the resumed stream shows at least as much (no flash of less text).
"use strict";

import { AssistantMessage, renderCheckpoint } from "./messages.js";

export class AnswerSlot {
  /** append(element) puts a new answer at the end of the list. */
  constructor(append) {
    this.append = append;
    this.current = null;
    this.checkpoint = null; // { message, chars }
  }

  get empty() {
    return this.current === null;
  }

  /** The answer being streamed, created on `start` (or on the first frame if `start` never came). */
  answer() {
    if (this.current === null) {
      this.current = new AssistantMessage();
      this.append(this.current.element);
    }
    return this.current;
  }

  /** The element for a saved row still streaming, which the resumed answer takes over. */
  resume(row) {
    this.current = new AssistantMessage();
    this.current.setModel(row.model);
    this.current.setMessageId(row.id);
    if (!row.content) {
      return this.current.element;
    }
    this.checkpoint = { message: renderCheckpoint(row), chars: row.content.length };
    return this.checkpoint.message.element;
  }

  /** The answer as it shows now, to end it on (stopped, failed): its checkpoint if the resumed stream has not caught
   * up with it yet, else the answer. */
  shown() {
    const { checkpoint, current } = this;
    if (checkpoint !== null && (current === null || current.text().length < checkpoint.chars)) {
      this.checkpoint = null;
      return checkpoint.message;
    }
    return this.answer();
  }

  /** Swap the resumed answer in for its checkpoint once it has caught up (or now, with `force`). */
  catchUp(force = false) {
    const { checkpoint, current } = this;
    if (checkpoint === null || current === null || (!force && current.text().length < checkpoint.chars)) {
      return;
    }
    current.markResumed();
    checkpoint.message.element.replaceWith(current.element);
    this.checkpoint = null;
  }

  /** The answer is over: the next one starts afresh. */
  clear() {
    this.catchUp(true);
    this.current = null;
    this.checkpoint = null;
  }
}
