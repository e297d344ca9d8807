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
 * arrived; `userText` and `route` are what Retry sends again; `kind`: "message", "edit" or "regenerate" (a new
 * version: the branch is shown afresh when it ends).
 */
export function newRecord({
  frame = null, userText = "", route = "auto", conversationId = null, messageId = null, kind = "message",
}) {
  return { frame, userText, route, conversationId, messageId, kind, lastSeq: -1, sent: false, started: false };
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
