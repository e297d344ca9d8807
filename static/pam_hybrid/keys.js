// The page's keyboard shortcuts and the help dialog that lists them (templates/pam_hybrid/chat.html). Keys become
// the same events the buttons dispatch; this module only reads keys and opens or closes the dialog.
"use strict";

/** Whether the key goes into a text field (so "/" and "?" type themselves there). */
function typingIn(target) {
  return target instanceof HTMLElement && (target.isContentEditable || target.matches("input, textarea, select"));
}

export class Shortcuts {
  /** dom: { input, helpButton, help (the <dialog>), helpClose }; dispatch(event) as in chat.js. */
  constructor(dom, dispatch) {
    this.dom = dom;
    this.dispatch = dispatch;
  }

  bind() {
    const { helpButton, help, helpClose } = this.dom;
    document.addEventListener("keydown", (event) => this.onKey(event));
    helpButton.addEventListener("click", () => this.openHelp());
    helpClose.addEventListener("click", () => help.close());
    help.addEventListener("click", (event) => {
      if (event.target === help) {
        help.close(); // a click on the backdrop
      }
    });
  }

  openHelp() {
    if (!this.dom.help.open) {
      this.dom.help.showModal();
    }
  }

  onKey(event) {
    if (event.defaultPrevented || event.isComposing || this.dom.help.open) {
      return; // the dialog closes itself on Escape
    }
    const action = this.actionFor(event);
    if (action !== null) {
      event.preventDefault();
      action();
    }
  }

  actionFor(event) {
    const { key, shiftKey, altKey } = event;
    const mod = event.ctrlKey || event.metaKey;
    const typing = typingIn(event.target);
    if (mod && shiftKey && !altKey && key.toLowerCase() === "o") {
      return () => {
        this.dispatch({ type: "newChat" });
        this.focusComposer();
      };
    }
    if ((mod && key === "/") || (key === "?" && !mod && !typing)) {
      return () => this.openHelp();
    }
    if (key === "Escape" && shiftKey) {
      return () => this.focusComposer();
    }
    if (key === "Escape" && !mod && !altKey) {
      return () => this.dispatch({ type: "stop" });
    }
    if (key === "/" && !mod && !altKey && !typing) {
      return () => this.focusComposer();
    }
    return null;
  }

  focusComposer() {
    this.dom.input.focus();
  }
}
