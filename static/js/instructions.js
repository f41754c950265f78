/*
 * The project's instructions on the labeling page: an overlay (#instructions, rendered by the
 * server, sanitised there) opened by the server on a member's first visit and after an owner's
 * edit, by the I key (label.js) and by the "Instructions" button. An owner's edit made while
 * the page is open arrives as a live event (live.js: onInstructions): the overlay is fetched
 * again (the server records it as seen), replaced and opened.
 *
 *   const instructions = Instructions.create(root, url);
 *   instructions.available(), .isOpen(), .toggle(open), .showVersion(version)
 */
(function () {
  "use strict";

  function create(root, url) {
    let overlay = document.getElementById("instructions"); // absent while there are none
    const button = document.getElementById("instructions-button");

    function isOpen() {
      return Boolean(overlay) && !overlay.hidden;
    }

    function toggle(open) {
      if (!overlay) return;
      overlay.hidden = open === undefined ? !overlay.hidden : !open;
      if (!overlay.hidden) document.getElementById("instructions-close").focus();
      else if (document.activeElement && overlay.contains(document.activeElement)) document.activeElement.blur();
    }

    async function showVersion(version) {
      if (overlay && Number(overlay.dataset.version) >= version) return;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.status !== 200) return; // 204: nothing to show any more
        const html = await response.text();
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("instructions");
        if (!fresh) return;
        if (overlay) overlay.replaceWith(fresh);
        else root.after(fresh);
        overlay = fresh;
        button.hidden = false;
        toggle(true);
      } catch (err) {
        // No connection: the next page load shows them.
      }
    }

    button.addEventListener("click", () => {
      button.blur();
      toggle(true);
    });
    // Delegated: the overlay is replaced when a new version arrives.
    document.addEventListener("click", (event) => {
      if (overlay && (event.target.id === "instructions-close" || event.target === overlay)) toggle(false);
    });
    if (isOpen()) toggle(true); // focus "Got it"

    return { available: () => Boolean(overlay), isOpen, toggle, showVersion };
  }

  window.Instructions = { create };
})();
