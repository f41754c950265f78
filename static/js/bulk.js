// The bulk-labeling grid (templates/annotator/bulk.html): select images, confirm once, undo
// the batch. Posts to the API with the session (POST .../annotations/bulk/ and
// .../annotations/bulk/<batch>/undo/). Keys: arrows or h j k l move, space selects or removes,
// a selects all (or none when all are selected), Enter confirms, u undoes the last batch.
(function () {
  "use strict";
  const root = document.getElementById("bulk");
  const grid = document.getElementById("bulk-grid");
  const form = document.getElementById("bulk-answer");
  if (!root || !grid || !form) return;

  const tiles = Array.from(grid.querySelectorAll(".bulk-tile"));
  const confirmButton = document.getElementById("bulk-confirm");
  const undoButton = document.getElementById("bulk-undo");
  const more = document.getElementById("bulk-more");
  const count = document.getElementById("bulk-count");
  const status = document.getElementById("bulk-status");
  const answerUrl = root.dataset.answerUrl;
  const multiLabel = root.dataset.multiLabel === "1";
  let key = root.dataset.key;
  let batch = null;
  let busy = false;

  function csrfToken() {
    const input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return String(Date.now()) + Math.random().toString(16).slice(2);
  }

  function open(tile) {
    return !tile.classList.contains("is-saved");
  }

  function selected() {
    return tiles.filter((t) => open(t) && t.getAttribute("aria-selected") === "true");
  }

  function answerText() {
    if (!multiLabel) return form.elements.label.value;
    const names = Array.from(form.querySelectorAll("input[name=labels]:checked")).map((i) => i.value);
    return names.length ? names.join(", ") : "none of the classes";
  }

  function refresh() {
    const n = selected().length;
    count.textContent = String(n);
    confirmButton.disabled = busy || n === 0;
    undoButton.hidden = !batch;
    if (more) more.hidden = !tiles.some((t) => !open(t));
  }

  function say(text, kind) {
    status.textContent = text;
    status.dataset.kind = kind || "";
  }

  function toggle(tile, on) {
    if (!open(tile)) return;
    const value = on === undefined ? tile.getAttribute("aria-selected") !== "true" : on;
    tile.setAttribute("aria-selected", value ? "true" : "false");
    refresh();
  }

  function toggleAll() {
    const openTiles = tiles.filter(open);
    const all = openTiles.every((t) => t.getAttribute("aria-selected") === "true");
    openTiles.forEach((t) => t.setAttribute("aria-selected", all ? "false" : "true"));
    refresh();
  }

  function focusAt(i) {
    const target = tiles[Math.max(0, Math.min(tiles.length - 1, i))];
    tiles.forEach((t) => (t.tabIndex = t === target ? 0 : -1));
    target.focus();
  }

  function columns() {
    const top = tiles[0].offsetTop;
    const n = tiles.findIndex((t) => t.offsetTop !== top);
    return n === -1 ? tiles.length : n;
  }

  function move(dx, dy) {
    const at = Math.max(0, tiles.indexOf(document.activeElement));
    focusAt(at + dx + dy * columns());
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = {};
    }
    if (!response.ok) {
      const detail = data.detail || Object.values(data).flat().join(" ") || `The server answered ${response.status}.`;
      throw new Error(detail);
    }
    return data;
  }

  async function confirmSelection() {
    const chosen = selected();
    if (busy || !chosen.length) return;
    const body = { items: chosen.map((t) => Number(t.dataset.item)), idempotency_key: key };
    if (multiLabel) body.labels = Array.from(form.querySelectorAll("input[name=labels]:checked")).map((i) => i.value);
    else body.label = form.elements.label.value;
    busy = true;
    refresh();
    say(`Saving ${chosen.length} answers…`, "busy");
    try {
      const saved = await post(answerUrl, body);
      batch = saved.batch;
      key = newKey(); // the next confirm is another request
      const done = new Set(saved.items);
      tiles.forEach((t) => {
        if (done.has(Number(t.dataset.item))) {
          t.classList.add("is-saved");
          t.dataset.saved = answerText();
          t.setAttribute("aria-selected", "false");
          t.setAttribute("aria-disabled", "true");
        }
      });
      say(`Saved ${saved.count} answers as ${answerText()}.`, "ok");
    } catch (error) {
      say(`Not saved: ${error.message}`, "error"); // all or nothing: the selection stays for another try
    } finally {
      busy = false;
      refresh();
    }
  }

  async function undoBatch() {
    if (busy || !batch) return;
    busy = true;
    refresh();
    try {
      const undone = await post(`${answerUrl}${batch}/undo/`);
      const back = new Set(undone.items);
      tiles.forEach((t) => {
        if (back.has(Number(t.dataset.item))) {
          t.classList.remove("is-saved");
          t.removeAttribute("aria-disabled");
          t.setAttribute("aria-selected", "true");
        }
      });
      batch = null;
      say(`Undid the batch: ${undone.count} answers taken back.`, "ok");
    } catch (error) {
      say(`Could not undo: ${error.message}`, "error");
    } finally {
      busy = false;
      refresh();
    }
  }

  tiles.forEach((tile) => {
    tile.addEventListener("click", () => {
      focusAt(tiles.indexOf(tile));
      toggle(tile);
    });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    confirmSelection();
  });
  undoButton.addEventListener("click", undoBatch);

  const MOVES = {
    ArrowLeft: [-1, 0], h: [-1, 0], ArrowRight: [1, 0], l: [1, 0],
    ArrowUp: [0, -1], k: [0, -1], ArrowDown: [0, 1], j: [0, 1],
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (!target.closest || target.closest(".bulk-query")) return; // choosing another grid
    if (event.key === "Enter") {
      event.preventDefault();
      confirmSelection();
      return;
    }
    if (target.closest("#bulk-answer")) return; // choosing the class: its keys are the control's
    if (MOVES[event.key]) {
      event.preventDefault();
      move(...MOVES[event.key]);
    } else if (event.key === " ") {
      event.preventDefault();
      const tile = tiles.includes(document.activeElement) ? document.activeElement : null;
      if (tile) toggle(tile);
    } else if (event.key === "a" || event.key === "A") {
      event.preventDefault();
      toggleAll();
    } else if (event.key === "u" || event.key === "U") {
      event.preventDefault();
      undoBatch();
    }
  });
  refresh();
})();
