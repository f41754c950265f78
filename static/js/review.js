/*
 * The review page's keys: a class's key (shown on its button) fixes the image with that
 * class, A accepts the answers. The page works without this script: every button is a plain
 * form submit. One key press sends one verdict (a held key or a second press waits for the
 * next page).
 */
(function () {
  "use strict";

  const root = document.getElementById("review-item");
  if (!root) return;
  const fixes = new Map(
    Array.from(root.querySelectorAll("#review-fix button[data-hotkey]"))
      .filter((b) => b.dataset.hotkey)
      .map((b) => [b.dataset.hotkey.toLowerCase(), b])
  );
  const accept = root.querySelector("#review-accept button");
  let sent = false;

  document.addEventListener("keydown", (event) => {
    if (sent || event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const button = fixes.get(key) || (key === "a" ? accept : null);
    if (!button) return;
    event.preventDefault();
    sent = true;
    button.click();
  });
})();
