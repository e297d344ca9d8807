// The answer this tab is waiting for, kept in sessionStorage so that a reload (or a crash of the tab's socket)
// can pick it up again: the message frame until the server names the answer, then the answer's id and the last
// sequence number rendered.
"use strict";

const KEY = "pam.inflight";
const SEQ_KEY = "pam.inflight.seq"; // written for every frame, apart from the record, which holds the question's text

/**
 * A record: { frame, userText, route, conversationId, messageId, lastSeq, sent, started }.
 * `frame` is our own `message` frame (null when following an answer another tab asked for), re-sent with the same
 * client_msg_id until `start` names the answer; `sent` says whether it ever left this page; `started` whether `start`
 * arrived; `userText` and `route` are what Retry sends again.
 */
export function newRecord({ frame = null, userText = "", route = "auto", conversationId = null, messageId = null }) {
  return { frame, userText, route, conversationId, messageId, lastSeq: -1, sent: false, started: false };
}

export class InflightStore {
  load() {
    try {
      const record = JSON.parse(window.sessionStorage.getItem(KEY) || "null");
      if (!isRecord(record)) {
        return null;
      }
      const seq = Number.parseInt(window.sessionStorage.getItem(SEQ_KEY) || "", 10);
      return Number.isInteger(seq) && seq > record.lastSeq ? { ...record, lastSeq: seq } : record;
    } catch {
      return null; // storage disabled or corrupt: nothing to resume
    }
  }

  save(record) {
    this.write(() => {
      window.sessionStorage.setItem(KEY, JSON.stringify(record));
      window.sessionStorage.setItem(SEQ_KEY, String(record.lastSeq));
    });
  }

  /** The last sequence number rendered: cheap enough for every frame. */
  saveSeq(seq) {
    this.write(() => window.sessionStorage.setItem(SEQ_KEY, String(seq)));
  }

  clear() {
    this.write(() => {
      window.sessionStorage.removeItem(KEY);
      window.sessionStorage.removeItem(SEQ_KEY);
    });
  }

  write(action) {
    try {
      action();
    } catch {
      // Storage full or disabled: resuming after a reload is lost; resuming after a socket drop still works.
    }
  }
}

function isRecord(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    Number.isInteger(value.lastSeq) &&
    (typeof value.messageId === "string" || (value.frame !== null && typeof value.frame === "object"))
  );
}

/**
 * The answer being followed and what each socket owes it: the message frame until `start` names the answer, then a
 * resume after the last frame rendered; a numbered frame already rendered is refused. A stall check fires when
 * nothing has arrived for `stallMs` while a frame is out.
 */
export class Inflight {
  constructor(socket, { stallMs, onStall }) {
    this.socket = socket;
    this.stallMs = stallMs;
    this.onStall = onStall;
    this.store = new InflightStore();
    this.record = null;
    this.lastSeq = -1;
    this.connection = 0; // sockets opened so far
    this.sentOn = -1; // the socket the record's message or resume went out on
    this.cancelRequested = false;
    this.stallTimer = null;
  }

  /** What a reload left behind, or null. */
  restored() {
    return this.store.load();
  }

  follow(record) {
    this.record = record;
    this.lastSeq = record.lastSeq;
    this.sentOn = -1;
    this.cancelRequested = false;
    this.store.save(record);
  }

  /** Stop following; with `keepStored`, a reload still picks the answer up. */
  end({ keepStored = false } = {}) {
    this.record = null;
    this.cancelRequested = false;
    window.clearTimeout(this.stallTimer);
    if (!keepStored) {
      this.store.clear();
    }
  }

  /** The user moved on: an answer kept for a reload is no longer wanted. */
  forget() {
    if (this.record === null) {
      this.store.clear();
    }
  }

  opened() {
    this.connection += 1;
  }

  dropped() {
    window.clearTimeout(this.stallTimer);
  }

  /** Send what the answer needs on this socket, once per socket; true when a frame went out now. */
  flush() {
    const record = this.record;
    if (record === null || this.sentOn === this.connection || !this.socket.isOpen()) {
      return false;
    }
    const frame = record.messageId
      ? { type: "resume", message_id: record.messageId, last_seq: this.lastSeq }
      : record.frame;
    if (!frame || !this.socket.send(frame)) {
      return false;
    }
    this.sentOn = this.connection;
    if (!record.sent) {
      record.sent = true;
      this.store.save(record);
    }
    this.armStallCheck();
    return true;
  }

  /** Whether the server has the answer's frame on the socket open now. */
  get sentHere() {
    return this.record !== null && this.sentOn === this.connection && this.socket.isOpen();
  }

  /** The user pressed Stop: true when the cancel can go now; otherwise it goes right after the next flush. */
  requestCancel() {
    this.cancelRequested = true;
    return this.sentHere;
  }

  /** The server refused the message before taking it (it is restarting): send it again on the next socket. False
   * when the answer had begun (then the refusal is about something else). */
  requeue() {
    const record = this.record;
    if (record === null || record.messageId || record.started) {
      return false;
    }
    this.sentOn = -1;
    return true;
  }

  /** After a drop: whether the answer can be picked up again (by id, or by sending its message again). */
  get resumable() {
    const record = this.record;
    return record !== null && Boolean(record.messageId || !record.started);
  }

  /** Whether a frame is new; a numbered one is remembered (also for a reload). Unnumbered frames always are. */
  accept(seq) {
    this.armStallCheck();
    if (seq === null) {
      return true;
    }
    if (seq <= this.lastSeq) {
      return false; // already shown: a resume overlaps what arrived before the drop
    }
    this.lastSeq = seq;
    this.store.saveSeq(seq);
    return true;
  }

  /** `start` named the answer: from now on a new socket resumes it instead of sending the message again. */
  started(metadata) {
    const record = this.record;
    record.started = true;
    record.messageId = metadata.message_id || record.messageId;
    record.conversationId = metadata.conversation_id || record.conversationId;
    record.lastSeq = this.lastSeq;
    this.store.save(record);
  }

  armStallCheck() {
    window.clearTimeout(this.stallTimer);
    this.stallTimer = window.setTimeout(() => this.onStall(this.record), this.stallMs);
  }
}
