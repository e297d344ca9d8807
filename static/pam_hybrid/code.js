// Blocks in rendered answer text made usable: code gets a language label, a Copy button and (once complete)
// highlighting; tables scroll inside themselves. Also the clipboard helper every Copy button uses.
"use strict";

import hljs from "./vendor/highlight.min.js";

const LANGUAGE_CLASS = /(?:^|\s)language-(\S+)/;
const COPIED_MS = 1500;

function languageOf(code) {
  const match = LANGUAGE_CLASS.exec(code.className);
  return match ? match[1] : "";
}

function el(tag, className, text = "") {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

function codeBlock(pre, code) {
  const end = code.lastChild;
  if (end !== null && end.nodeType === Node.TEXT_NODE && end.data.endsWith("\n")) {
    end.data = end.data.slice(0, -1); // markdown-it ends a fence's code with a newline: not part of the code
  }
  const wrapper = el("div", "code-block");
  const head = el("div", "code-head");
  const language = languageOf(code);
  const label = el("span", "code-lang", language || "text");
  label.dataset.testid = "code-language";
  const copy = el("button", "copy-button", "Copy");
  copy.type = "button";
  copy.dataset.testid = "code-copy";
  copy.setAttribute("aria-label", `Copy ${language || "code"} to the clipboard`);
  copy.addEventListener("click", () => copyText(copy, code.textContent));
  head.append(label, copy);
  pre.replaceWith(wrapper);
  pre.tabIndex = 0; // a block that scrolls sideways must be reachable by keyboard
  pre.setAttribute("aria-label", language ? `${language} code` : "code");
  wrapper.append(head, pre);
}

/** Code blocks and tables in `root` (a fragment or element) in their wrappers. */
export function decorateCode(root) {
  for (const code of root.querySelectorAll("pre > code")) {
    codeBlock(code.parentElement, code);
  }
  for (const table of root.querySelectorAll("table")) {
    const wrapper = el("div", "table-wrap");
    wrapper.tabIndex = 0;
    wrapper.setAttribute("role", "region");
    wrapper.setAttribute("aria-label", "table");
    table.replaceWith(wrapper);
    wrapper.append(table);
  }
}

/** Highlight the complete code blocks in `root`, in a language highlight.js knows (no guessing: it is slow). */
export function highlightCode(root) {
  for (const code of root.querySelectorAll("pre > code")) {
    const language = languageOf(code);
    if (language && hljs.getLanguage(language)) {
      hljs.highlightElement(code);
    }
  }
}

/** Copy to the clipboard, the button saying how it went for a moment (and telling screen readers). */
export async function copyText(button, text) {
  const label = button.getAttribute("aria-label");
  let outcome = "Copied";
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    outcome = "Copy failed";
  }
  button.textContent = outcome;
  if (label !== null) {
    button.setAttribute("aria-label", outcome);
  }
  window.setTimeout(() => {
    button.textContent = "Copy";
    if (label !== null) {
      button.setAttribute("aria-label", label);
    }
  }, COPIED_MS);
}
