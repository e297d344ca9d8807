// Answer text as markdown, drawn while it streams. markdown-it with raw HTML off, its output sanitised by DOMPurify,
// links opening apart from the page. Drawn incrementally: top-level blocks that are finished keep their DOM (and
// their highlighting); only the open tail is parsed and drawn again, at most once an animation frame.
"use strict";

import MarkdownIt from "./vendor/markdown-it.min.js";
import DOMPurify from "./vendor/purify.es.js";
import { decorateCode, highlightCode } from "./code.js";

const SAFE_LINK = /^(?:https?:|mailto:)/i;
const CLOSING_FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const TABLE_LINE = /^ {0,3}\|/;

const md = new MarkdownIt({ html: false, linkify: true, breaks: true, typographer: false });
md.linkify.set({ fuzzyLink: false, fuzzyEmail: false }); // only written-out URLs: no "main.py" as a link
md.disable("image"); // images from the model would load from anywhere (and the CSP refuses them anyway)
md.validateLink = (url) => SAFE_LINK.test(url.trim());
// Table alignment as a class: markdown-it writes a style attribute, which the CSP refuses.
md.core.ruler.push("align_as_class", (state) => {
  for (const token of state.tokens) {
    if (token.type === "inline" || !token.attrs) {
      continue;
    }
    const style = token.attrGet("style");
    const align = style && /text-align:(left|right|center)/.exec(style);
    if (align) {
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      token.attrJoin("class", `md-align-${align[1]}`);
    }
  }
});

const PURIFY = { RETURN_DOM_FRAGMENT: true, FORBID_ATTR: ["style"], ALLOWED_URI_REGEXP: SAFE_LINK };
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Sanitised, decorated nodes for `tokens`, without the newlines markdown-it puts between blocks; `finished`
 * blocks get their code highlighted. */
function nodesOf(tokens, env, finished) {
  const fragment = DOMPurify.sanitize(md.renderer.render(tokens, md.options, env), PURIFY);
  decorateCode(fragment);
  if (finished) {
    highlightCode(fragment);
  }
  return Array.from(fragment.childNodes).filter((node) => node.nodeType !== Node.TEXT_NODE || node.data.trim());
}

/** The character offset where line `line` (0-based) of `text` starts. */
function lineOffset(text, line) {
  let offset = 0;
  for (let i = 0; i < line; i += 1) {
    const end = text.indexOf("\n", offset);
    if (end === -1) {
      return text.length;
    }
    offset = end + 1;
  }
  return offset;
}

/** The indexes (into `tokens`) of the top-level blocks' first tokens. */
function blockStarts(tokens) {
  const starts = [];
  tokens.forEach((token, index) => {
    if (token.level === 0 && token.nesting !== -1 && token.map) {
      starts.push(index);
    }
  });
  return starts;
}

/** A fence whose closing line has arrived: nothing later can change it. */
function closedFence(token, lines, complete) {
  if (token.type !== "fence" || token.map[1] > complete || token.map[1] - 1 <= token.map[0]) {
    return false;
  }
  const close = CLOSING_FENCE.exec(lines[token.map[1] - 1] || "");
  return close !== null && close[1][0] === token.markup[0] && close[1].length >= token.markup.length;
}

/** [tokens, source line] up to which the blocks are finished: every block before the last one that starts on a
 * complete line, and that one too when it is a closed fence. */
function finishedUpTo(tokens, text, complete) {
  const starts = blockStarts(tokens);
  const open = starts.filter((index) => tokens[index].map[0] < complete).pop();
  if (open === undefined) {
    return [0, 0];
  }
  const token = tokens[open];
  if (closedFence(token, text.split("\n"), complete)) {
    const next = starts.find((index) => index > open);
    return [next === undefined ? tokens.length : next, token.map[1]];
  }
  return [open, token.map[0]];
}

export class MarkdownView {
  /** box: the element the answer text is drawn into; onDrawn(): after each draw (to keep the list scrolled). */
  constructor(box, onDrawn = () => {}) {
    this.box = box;
    this.onDrawn = onDrawn;
    this.source = "";
    this.done = 0; // source[0:done] is drawn in finished blocks, kept as they are
    this.tail = []; // the nodes of the open tail, drawn again each time
    this.frame = 0;
  }

  append(text) {
    this.source += text;
    if (this.frame === 0) {
      this.frame = window.requestAnimationFrame(() => {
        this.frame = 0;
        this.draw(false);
      });
    }
  }

  /** The text is complete: draw it all now, every block finished. */
  finish() {
    if (this.frame !== 0) {
      window.cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    this.draw(true);
  }

  draw(final) {
    let text = this.source.slice(this.done);
    const complete = (text.match(/\n/g) || []).length; // lines fully received
    if (!final) {
      const partialStart = text.lastIndexOf("\n") + 1;
      if (TABLE_LINE.test(text.slice(partialStart))) {
        text = text.slice(0, partialStart); // a table row half received waits for its end
      }
    }
    const env = {};
    const tokens = md.parse(text, env);
    const [cut, line] = final ? [tokens.length, Infinity] : finishedUpTo(tokens, text, complete);
    if (cut > 0) {
      this.commit(tokens.slice(0, cut), env);
      this.done += final ? text.length : lineOffset(text, line);
    }
    for (const node of this.tail) {
      node.remove();
    }
    this.tail = cut < tokens.length ? nodesOf(tokens.slice(cut), env, false) : [];
    this.box.append(...this.tail);
    this.onDrawn();
  }

  commit(tokens, env) {
    for (const node of this.tail) {
      node.remove();
    }
    this.tail = [];
    this.box.append(...nodesOf(tokens, env, true));
  }
}
