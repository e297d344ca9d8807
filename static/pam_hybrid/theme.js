// The colour theme: "light", "dark" or "system" (the default), kept in localStorage. A classic script loaded in <head>
// after the stylesheets, so the choice applies before the first paint with no inline code (the CSP allows none).
// base.css follows <html data-theme>; the highlight.js sheets follow their `media`, set here. Any
// <select data-theme-select> on the page changes it; other open tabs follow through the storage event.
"use strict";

(() => {
  const KEY = "pam-theme";
  const THEMES = ["system", "light", "dark"];

  function stored() {
    let value = null;
    try {
      value = window.localStorage.getItem(KEY);
    } catch {
      // storage refused (privacy settings): the system's theme
    }
    return THEMES.includes(value) ? value : "system";
  }

  function apply(choice) {
    const root = document.documentElement;
    if (choice === "system") {
      root.removeAttribute("data-theme");
    } else {
      root.dataset.theme = choice;
    }
    for (const sheet of document.querySelectorAll("link[data-theme-sheet]")) {
      const scheme = sheet.dataset.themeSheet;
      const pinned = choice === scheme ? "all" : "not all";
      sheet.media = choice === "system" ? `(prefers-color-scheme: ${scheme})` : pinned;
    }
    for (const select of document.querySelectorAll("select[data-theme-select]")) {
      select.value = choice;
    }
  }

  function choose(choice) {
    try {
      window.localStorage.setItem(KEY, choice);
    } catch {
      // not kept, but applied to this page
    }
    apply(choice);
  }

  apply(stored());
  document.addEventListener("DOMContentLoaded", () => apply(stored()));
  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-theme-select]")) {
      choose(event.target.value);
    }
  });
  window.addEventListener("storage", (event) => {
    if (event.key === KEY) {
      apply(stored());
    }
  });
})();
