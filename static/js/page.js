// Behaviour every page shares, kept out of the markup so the Content-Security-Policy can
// forbid inline scripts, inline handlers and style attributes (annotator/settings.py):
//   data-width="42"          the element's width in percent (bars), set through CSSOM, which
//                            the policy allows, on load and on every htmx swap;
//   data-reset-on-success    a form htmx posted is cleared when the request succeeded;
//   data-submit-on-change    a select submits its form when a value is picked.
(function () {
  "use strict";

  function setWidths(root) {
    const scope = root && root.querySelectorAll ? root : document;
    const found = Array.from(scope.querySelectorAll("[data-width]"));
    if (scope.matches && scope.matches("[data-width]")) found.push(scope);
    for (const el of found) {
      const value = Number.parseFloat(el.dataset.width);
      el.style.width = (Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0) + "%";
    }
  }

  if (window.htmx) {
    window.htmx.onLoad(setWidths); // the page itself, then each piece htmx swaps in
  } else {
    document.addEventListener("DOMContentLoaded", () => setWidths(document));
  }

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.target;
    if (event.detail.successful && form instanceof HTMLFormElement && form.hasAttribute("data-reset-on-success")) {
      form.reset();
    }
  });

  document.addEventListener("change", (event) => {
    const select = event.target;
    if (select instanceof HTMLSelectElement && select.hasAttribute("data-submit-on-change") && select.value && select.form) {
      select.form.requestSubmit();
    }
  });
})();
