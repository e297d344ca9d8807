// Small pure formatters for the meta line and the sidebar.
"use strict";

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** "$0.000123" from a decimal string such as "0.00012300"; "cost unknown" when there is no price. */
export function formatCost(cost) {
  if (cost === null || cost === undefined || cost === "") {
    return "cost unknown";
  }
  const text = String(cost);
  const match = DECIMAL.exec(text);
  if (match) {
    const fraction = (match[2] || "").replace(/0+$/, "").padEnd(2, "0");
    return `$${match[1]}.${fraction}`;
  }
  const value = Number(text); // exponent forms such as "0E-8"
  if (!Number.isFinite(value)) {
    return "cost unknown";
  }
  return formatCost(value.toFixed(8));
}

/** "850 ms" or "1.24 s"; null when there is no value. */
export function formatMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    return null;
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
];

/** "5 min. ago", "yesterday", or a date, for the sidebar. */
export function formatWhen(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) {
    return "";
  }
  let amount = Math.round((then - now) / 1000);
  if (Math.abs(amount) < 45) {
    return "just now";
  }
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) {
      return RELATIVE.format(amount, unit);
    }
    amount = Math.round(amount / size);
  }
  return new Date(then).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** A random id for client_msg_id; crypto.randomUUID only exists in secure contexts. */
export function newClientId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const PROVIDER_LABELS = { openai: "OpenAI", anthropic: "Anthropic", offline: "Offline model" };

/** A provider's name for people: "OpenAI" for "openai"; unknown names as they are ("" for none). */
export function providerLabel(name) {
  return PROVIDER_LABELS[name] || name || "";
}
