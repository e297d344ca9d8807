// A deliberately tiny renderer for answer text: fenced code blocks become <pre>, everything else stays
// plain pre-wrapped text. No markdown, no HTML: every piece of model output goes in through textContent.
"use strict";

const FENCE = /^```([^\n`]*)\n([\s\S]*?)\n?^```[ \t]*$/gm;

/** Split text into [{kind: "text"|"code", text, lang}] on closed ``` fences; an open fence stays text. */
export function textBlocks(text) {
  const blocks = [];
  let last = 0;
  for (const match of text.matchAll(FENCE)) {
    pushText(blocks, text.slice(last, match.index));
    blocks.push({ kind: "code", lang: match[1].trim(), text: match[2] });
    last = match.index + match[0].length;
  }
  pushText(blocks, text.slice(last));
  return blocks;
}

function pushText(blocks, text) {
  const trimmed = text.replace(/^\n+/, "").replace(/\n+$/, "");
  if (trimmed) {
    blocks.push({ kind: "text", text: trimmed });
  }
}

function textBox(text) {
  const box = document.createElement("div");
  box.className = "message-text";
  box.textContent = text;
  return box;
}

function codeBox(block) {
  const wrapper = document.createElement("div");
  wrapper.className = "code-block";
  const head = document.createElement("div");
  head.className = "code-head";
  const lang = document.createElement("span");
  lang.textContent = block.lang || "code";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-button";
  copy.textContent = "Copy";
  copy.addEventListener("click", () => copyText(copy, block.text));
  head.append(lang, copy);
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  code.textContent = block.text;
  pre.append(code);
  wrapper.append(head, pre);
  return wrapper;
}

/** Nodes for a finished piece of answer text. */
export function renderText(text) {
  return textBlocks(text).map((block) => (block.kind === "code" ? codeBox(block) : textBox(block.text)));
}

/** Copy to the clipboard, with the button saying how it went for a moment. */
export async function copyText(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  window.setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}
