/*
 * The labeling page: answer by key or click, see the next image at once, lose nothing.
 *
 * The page holds two leases: the item on screen (`current`) and a prefetched one (`next`)
 * whose image is already downloaded and decoded. An answer swaps the prefetched <img> element
 * into the page immediately, then goes into a queue of server operations that runs one at a
 * time, in order (answer, undo, next). Every answer carries an idempotency key made here, so a
 * retry after a network error or a 5xx (same key, growing delay) never makes two rows. The
 * server's reply to an answer carries the next prefetched lease; the request lists the items
 * this page still holds (`exclude`) so the server does not hand one of them out again.
 * A refused answer (409, 400) puts a red banner on screen that stays until closed.
 *
 * The page speaks the API's labeling contract (annotator/labeling/serializers.py): a lease is
 * what POST /api/projects/<pk>/next/ returns (`id`, `image_url`, `width`, `height`, `suggestion`,
 * ...) and an answer what .../annotations/ returns (`item`, `label`, `skipped`, ...). Each reply
 * also carries `items`: for each lease in it, the image's name and the user's undone answer on
 * it (`previous`), which the page keeps on its copy of the lease.
 *
 * "Unsure" (its button, and its key where no class holds it) is a skip that sends the image to
 * a reviewer; the "none of these" class, where a project has one, is a class button like the others.
 *
 * The model's guess for the image on screen is shown with its confidence (and the runners-up
 * when it is unsure); it is applied only by a key press (A or Enter) or a click. When the
 * trainer publishes a new queue (static/js/live.js), a "refresh" operation joins the queue:
 * after the answers before it are settled, it gives back the prefetched lease and leases the
 * new queue's top item, leaving the image on screen alone.
 *
 * Multi-label projects (`data-multi-label`): the classes are checkboxes; a class key toggles
 * one, Enter saves the checked set (none checked: "none applies"), A accepts the model's
 * suggested set (`suggestion.labels`), which is also checked when the item is shown. The set
 * is posted as `labels` values with the `labels_sent` marker, since a form body cannot carry
 * an empty list (annotator/pages/labeling.py: _answer_body).
 */
(function () {
  "use strict";

  const root = document.getElementById("labeler");
  if (!root) return;

  const initial = JSON.parse(document.getElementById("label-state").textContent);
  const urls = { next: root.dataset.nextUrl, answer: root.dataset.answerUrl, undo: root.dataset.undoUrl, refresh: root.dataset.nextUrl };
  const el = {
    stage: document.getElementById("stage"),
    image: document.getElementById("label-image"),
    name: document.getElementById("item-name"),
    errors: document.getElementById("label-errors"),
    status: document.getElementById("save-status"),
    guess: document.getElementById("guess"),
    guessKind: document.getElementById("guess-kind"),
    guessLabel: document.getElementById("guess-label"),
    guessConfidence: document.getElementById("guess-confidence"),
    guessTop: document.getElementById("guess-top"),
    previous: document.getElementById("previous-answer"),
    help: document.getElementById("help"),
    itemId: document.getElementById("item-id"),
    form: document.getElementById("answer-form"),
    skip: document.getElementById("skip-button"),
    unsure: document.getElementById("unsure-button"),
    labeled: document.getElementById("progress-labeled"),
    total: document.getElementById("progress-total"),
    mine: document.getElementById("progress-mine"),
    bar: document.getElementById("progress-bar"),
  };
  // Zoom, pan, original size, brightness and contrast (static/js/viewer.js).
  const viewer = window.ImageViewer.create(el.stage, {
    zoomIn: document.getElementById("zoom-in"),
    zoomOut: document.getElementById("zoom-out"),
    zoom: document.getElementById("zoom-level"),
    original: document.getElementById("zoom-original"),
    reset: document.getElementById("view-reset"),
    brightness: document.getElementById("view-brightness"),
    contrast: document.getElementById("view-contrast"),
  });
  // The project's instructions (static/js/instructions.js).
  const instructions = window.Instructions.create(root, root.dataset.instructionsUrl);
  const multi = root.hasAttribute("data-multi-label");
  const classButtons = Array.from(root.querySelectorAll(multi ? ".class-toggle input" : ".class-button"));
  const setButton = document.getElementById("set-button");
  const hotkeys = new Map(classButtons.filter((b) => b.dataset.hotkey).map((b) => [b.dataset.hotkey.toLowerCase(), b.value]));
  const hotkeyOf = new Map(classButtons.filter((b) => b.dataset.hotkey).map((b) => [b.value, b.dataset.hotkey]));
  // "Unsure" (a skip that sends the image to review); its key is empty where a class holds it.
  const unsureKey = el.unsure ? (el.unsure.dataset.hotkey || "").toLowerCase() : "";
  const SURE = 0.9; // below this confidence the runners-up are shown too
  const RETRY_DELAYS_MS = [300, 1000, 2000, 4000, 8000, 15000, 30000];
  const MAX_DURATION_MS = 24 * 3600 * 1000; // a longer time on one image is an idle tab, not work: not sent

  const state = {
    current: withDetails(initial.current, initial.items), // the lease on screen, or null
    next: withDetails(initial.next, initial.items), // the prefetched lease, or null
    nextImage: null, // its decoded <img>
    queue: [], // server operations, sent one at a time in order
    sending: false,
    history: [], // {lease, answer} given on this page, newest last (for an instant undo)
    shownAt: performance.now(),
    progress: initial.progress,
    refreshes: 0, // queue refreshes done (for tests)
  };

  // --- small helpers ------------------------------------------------------------------

  // The API's lease with the page's `name` and `previous` for it from a reply's `items`.
  function withDetails(lease, items) {
    if (!lease) return null;
    const about = (items && items[lease.id]) || {};
    return { ...lease, name: about.name || "image #" + lease.id, previous: about.previous || null };
  }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) window.crypto.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") + "-" + Date.now().toString(36);
  }

  function csrfToken() {
    // The cookie first: it is rotated on login, so a re-login in another tab keeps this page working.
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = el.form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function setText(names) {
    return names.length ? names.join(", ") : "none applies";
  }

  function answerText(op) {
    return op.unsure ? "unsure" : op.skip ? "skip" : op.labels ? setText(op.labels) : op.label;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // --- the screen ---------------------------------------------------------------------

  function makeImage(lease) {
    const img = new Image();
    img.decoding = "async";
    img.src = lease.image_url;
    return img;
  }

  function preload(lease) {
    state.next = lease;
    state.nextImage = lease ? makeImage(lease) : null;
    if (state.nextImage && state.nextImage.decode) state.nextImage.decode().catch(() => {});
  }

  function show(lease, img) {
    state.current = lease;
    root.classList.toggle("is-waiting", false);
    if (!lease) {
      el.image.hidden = true;
      el.name.textContent = "";
      el.itemId.textContent = "";
      setButtonsEnabled(false);
      updateIdle();
      return;
    }
    const image = img || makeImage(lease);
    image.id = "label-image";
    image.className = "label-image" + (lease.width < 256 && lease.height < 256 ? " is-small" : "");
    image.alt = lease.name;
    image.hidden = false;
    if (image !== el.image) {
      el.image.replaceWith(image);
      el.image = image;
    }
    state.shownAt = performance.now();
    if (!image.complete) image.addEventListener("load", () => (state.shownAt = performance.now()), { once: true });
    el.name.textContent = lease.name;
    el.itemId.textContent = "#" + lease.id;
    viewer.show(image, lease);
    const similar = document.getElementById("similar-link"); // the bulk grid of images like this one
    if (similar) similar.href = similar.dataset.base + lease.id;
    root.classList.remove("is-empty");
    showGuess(lease);
    showPrevious(lease.previous);
    setButtonsEnabled(true);
  }

  function showWaiting() {
    state.current = null;
    root.classList.add("is-waiting");
    setButtonsEnabled(false);
  }

  function showGuess(lease) {
    const guess = lease && lease.suggestion;
    if (multi) return showSetGuess(guess);
    classButtons.forEach((b) => b.toggleAttribute("data-suggested", Boolean(guess) && b.value === guess.label));
    el.guess.toggleAttribute("data-empty", !guess);
    if (!guess) return;
    // An imported guess (another tool's, shown while our model has none) names its source.
    if (el.guessKind) el.guessKind.textContent = guess.source ? `Guess from ${guess.source}` : "Model guess";
    el.guessLabel.textContent = guess.label;
    el.guessConfidence.textContent = guess.confidence == null ? "" : percent(guess.confidence);
    showRunnersUp(guess);
  }

  // Multi-label: the suggested set is shown checked, ready to accept or change.
  function showSetGuess(guess) {
    const suggested = (guess && Array.isArray(guess.labels) && guess.labels) || [];
    classButtons.forEach((b) => b.toggleAttribute("data-suggested", suggested.includes(b.value)));
    setChosen(suggested);
    el.guess.toggleAttribute("data-empty", !guess);
    if (!guess) return;
    el.guessLabel.textContent = setText(suggested);
    el.guessConfidence.textContent = guess.set_confidence == null ? "" : percent(guess.set_confidence);
  }

  function chosen() {
    return classButtons.filter((b) => b.checked).map((b) => b.value);
  }

  function setChosen(names) {
    classButtons.forEach((b) => (b.checked = names.includes(b.value)));
    showSetButton();
  }

  function showSetButton() {
    if (!setButton) return;
    const n = chosen().length;
    const text = n === 0 ? setButton.dataset.none : n === 1 ? setButton.dataset.one : setButton.dataset.some.replace("{n}", n);
    document.getElementById("set-button-text").textContent = text;
  }

  function toggle(name) {
    const box = classButtons.find((b) => b.value === name);
    if (box && !box.disabled) box.checked = !box.checked;
    showSetButton();
  }

  function percent(x) {
    const p = Math.round(x * 100);
    return (p === 0 && x > 0 ? "<1" : String(p)) + "%";
  }

  function showRunnersUp(guess) {
    // The next two classes of the top 3, when the model is unsure; each with its hotkey.
    const list = el.guessTop && el.guessTop.querySelector("ol");
    if (!list) return;
    const others = (guess.top || []).filter((row) => row.label !== guess.label).slice(0, 2);
    const show = others.length > 0 && (guess.confidence == null || guess.confidence < SURE);
    el.guessTop.hidden = !show;
    list.replaceChildren(
      ...(show ? others : []).map((row) => {
        const li = document.createElement("li");
        const key = hotkeyOf.get(row.label);
        if (key) {
          const kbd = document.createElement("kbd");
          kbd.textContent = key.toUpperCase();
          li.append(kbd, " ");
        }
        const name = document.createElement("span");
        name.textContent = row.label;
        const conf = document.createElement("span");
        conf.className = "muted";
        conf.textContent = " " + percent(row.confidence);
        li.append(name, conf);
        return li;
      })
    );
  }

  function showPrevious(previous) {
    const had = (b) => Boolean(previous) && !previous.skipped && (previous.labels ? previous.labels.includes(b.value) : b.value === previous.label);
    classButtons.forEach((b) => b.toggleAttribute("data-previous", had(b)));
    el.skip.toggleAttribute("data-previous", Boolean(previous) && previous.skipped && !previous.unsure);
    if (el.unsure) el.unsure.toggleAttribute("data-previous", Boolean(previous) && Boolean(previous.unsure));
    el.previous.hidden = !previous;
    if (previous) el.previous.querySelector("strong").textContent = answerText({ unsure: previous.unsure, skip: previous.skipped, labels: previous.labels, label: previous.label });
  }

  function setButtonsEnabled(enabled) {
    classButtons.forEach((b) => (b.disabled = !enabled));
    el.skip.disabled = !enabled;
    if (el.unsure) el.unsure.disabled = !enabled;
    if (setButton) setButton.disabled = !enabled;
  }

  function pendingAnswers() {
    return state.queue.reduce((n, op) => n + (op.kind === "answer" ? 1 : op.kind === "undo" ? -1 : 0), 0);
  }

  function showProgress() {
    const p = state.progress;
    el.labeled.textContent = p.labeled;
    el.total.textContent = p.total;
    el.mine.textContent = Math.max(0, p.mine + pendingAnswers());
    el.bar.style.width = (p.total ? Math.round((100 * p.labeled) / p.total) : 0) + "%";
  }

  function setStatus(text, kind) {
    el.status.textContent = text;
    el.status.dataset.kind = kind || "";
  }

  function updateIdle() {
    const waiting = state.queue.filter((op) => op.kind === "answer").length;
    if (waiting) setStatus("Saving " + waiting + " answer" + (waiting > 1 ? "s" : "") + "…", "saving");
    else if (!state.sending) setStatus(state.history.length ? "All answers saved" : "", "saved");
    root.dataset.pending = String(state.queue.length);
    // A queue refresh alone does not take the page out of "nothing left" until it brings an item.
    const empty = !state.current && !state.next && state.queue.every((op) => op.kind === "refresh");
    root.classList.toggle("is-empty", empty);
    if (empty) root.classList.remove("is-waiting");
    showProgress();
  }

  function banner(text) {
    const note = document.createElement("div");
    note.className = "banner banner-error";
    note.setAttribute("role", "alert");
    const body = document.createElement("span");
    body.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "banner-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => note.remove());
    note.append(body, close);
    el.errors.append(note);
  }

  // --- user actions -------------------------------------------------------------------

  // `labels` (an array) answers a multi-label item with a set; `label` a single-label one;
  // `unsure` is a skip that sends the image to review.
  function answer(label, skip, labels, unsure) {
    const lease = state.current;
    if (!lease) return;
    const op = {
      kind: "answer",
      lease,
      label: skip || unsure || labels ? null : label,
      labels: skip || unsure || !labels ? null : labels,
      skip: Boolean(skip) && !unsure,
      unsure: Boolean(unsure),
      key: newKey(),
      durationMs: Math.max(0, Math.round(performance.now() - state.shownAt)),
    };
    state.history.push({ lease, answer: { item: lease.id, label: op.label, labels: op.labels, skipped: op.skip || op.unsure, unsure: op.unsure } });
    advance();
    enqueue(op);
  }

  function advance() {
    if (state.next) {
      const lease = state.next;
      const img = state.nextImage;
      state.next = null;
      state.nextImage = null;
      show(lease, img);
    } else {
      showWaiting();
    }
  }

  function undo() {
    const op = { kind: "undo", shown: null };
    const last = state.history.pop();
    if (last) {
      // Show the item again at once; the server's reply confirms it (or corrects it). The
      // server drops the page's other leases on undo, so the prefetched one goes too.
      op.shown = last.lease.id;
      dropPrefetch();
      show({ ...last.lease, previous: last.answer });
    }
    enqueue(op);
  }

  function dropPrefetch() {
    state.next = null;
    state.nextImage = null;
  }

  function checkAgain() {
    root.classList.remove("is-empty");
    showWaiting();
    enqueue({ kind: "next" });
  }

  function refreshQueue() {
    // A new queue: once the answers before it are settled, trade the prefetched lease for
    // the new queue's top item. One waiting refresh is enough.
    if (state.queue.some((op, i) => op.kind === "refresh" && !(i === 0 && state.sending))) return;
    enqueue({ kind: "refresh", release: null });
  }

  function acceptGuess() {
    const guess = state.current && state.current.suggestion;
    if (!guess) return;
    if (!multi) answer(guess.label, false);
    else if (Array.isArray(guess.labels)) answer(null, false, guess.labels); // a guess without a set saves nothing
  }

  function submitSet() {
    if (state.current) answer(null, false, chosen());
  }

  // --- the server queue ---------------------------------------------------------------

  function enqueue(op) {
    state.queue.push(op);
    updateIdle();
    pump();
  }

  function heldItems(op) {
    // Items this page holds leases on: on screen, prefetched, and answered but not yet sent.
    const answered = op.kind === "answer" ? op.lease.id : null;
    const ids = [];
    if (state.current) ids.push(state.current.id);
    if (state.next) ids.push(state.next.id);
    state.queue.forEach((q) => q.kind === "answer" && q !== op && ids.push(q.lease.id));
    return ids.filter((id, i) => id !== answered && ids.indexOf(id) === i);
  }

  function requestBody(op) {
    const body = new URLSearchParams();
    if (op.kind === "answer") {
      body.set("item", op.lease.id);
      if (op.unsure) body.set("unsure", "1");
      else if (op.skip) body.set("skip", "1");
      else if (op.labels) {
        body.set("labels_sent", "1"); // an empty set has no `labels` value: the marker says it is one
        op.labels.forEach((name) => body.append("labels", name));
      } else body.set("label", op.label);
      body.set("idempotency_key", op.key);
      if (op.durationMs <= MAX_DURATION_MS) body.set("duration_ms", op.durationMs);
    }
    heldItems(op).forEach((id) => body.append("exclude", id));
    if (op.kind === "refresh" && op.release != null) body.append("release", op.release);
    return body;
  }

  async function pump() {
    if (state.sending || !state.queue.length) return;
    state.sending = true;
    const op = state.queue[0];
    if (op.kind === "refresh") {
      // Dropped before the request, so an answer given meanwhile never shows the released item.
      if (state.next) op.release = state.next.id;
      dropPrefetch();
    }
    try {
      const reply = await send(op);
      handle(op, reply);
    } finally {
      state.queue.shift();
      state.sending = false;
      updateIdle();
      pump();
    }
  }

  // Resolves with {status, data} once the server answered with JSON; retries forever on
  // network errors, 5xx and a lost session, always with the same answer and idempotency key.
  async function send(op) {
    const url = urls[op.kind];
    for (let attempt = 0; ; attempt++) {
      let problem;
      try {
        const response = await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: requestBody(op),
        });
        const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
        if (isJson && response.status < 500) {
          setStatus("", "");
          return { status: response.status, data: await response.json() };
        }
        const text = isJson ? "" : await response.text();
        if (response.redirected || response.status === 401 || (response.status === 403 && /csrf/i.test(text))) {
          problem = "You seem to be logged out. Log in again in another tab; your answers wait here and will be sent.";
        } else if (response.status >= 500 || response.status === 408 || response.status === 429) {
          problem = "The server had a problem (HTTP " + response.status + ").";
        } else {
          const error = response.status === 403
            ? "You are no longer allowed to label in this project. Ask a project owner."
            : "The server refused it (HTTP " + response.status + "); reload the page.";
          return { status: response.status, data: { error, next: null } };
        }
      } catch (err) {
        problem = "No connection to the server.";
      }
      const delay = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)];
      setStatus(problem + " Retrying in " + Math.ceil(delay / 1000) + " s; nothing is lost.", "retrying");
      await sleep(delay * (0.8 + 0.4 * Math.random()));
    }
  }

  function handle(op, reply) {
    const data = reply.data || {};
    if (op.kind === "refresh") state.refreshes += 1;
    if (data.progress) state.progress = data.progress;
    if (op.kind === "answer" && data.error) {
      state.history = state.history.filter((h) => h.lease.id !== op.lease.id);
      banner("Not saved: “" + answerText(op) + "” for " + op.lease.name + ". " + data.error);
    } else if (op.kind === "undo" && data.error) {
      banner(data.error);
      if (op.shown != null && state.current && state.current.id === op.shown) showWaiting(); // it was not undone
    } else if (op.kind === "undo") {
      undone(op, withDetails(data.current, data.items));
    } else if (data.error) {
      banner(data.error);
    }
    receive(withDetails(data.next, data.items));
  }

  function undone(op, lease) {
    dropPrefetch(); // leased before the undo, so released by it
    if (!lease) return;
    state.history = state.history.filter((h) => h.lease.id !== lease.id);
    const stillShown = state.current && state.current.id === lease.id;
    const answeredAgain = state.queue.some((q) => q.kind === "answer" && q.lease.id === lease.id);
    if (stillShown) {
      state.current = { ...lease, previous: state.current.previous || lease.previous };
    } else if (lease.id !== op.shown || !answeredAgain) {
      show(lease); // the server undid another item than the one shown: show the server's
    }
  }

  function receive(lease) {
    if (!lease) return;
    const held = (state.current && state.current.id === lease.id) || (state.next && state.next.id === lease.id);
    if (held) return;
    if (!state.current) show(lease);
    else if (!state.next) preload(lease);
  }

  // --- input --------------------------------------------------------------------------

  function toggleHelp(open) {
    el.help.hidden = open === undefined ? !el.help.hidden : !open;
  }

  function isTyping(target) {
    if (target && target.tagName === "INPUT" && target.type === "checkbox") return false; // a class toggle
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", (event) => {
    if (isTyping(event.target) || event.altKey || event.metaKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (event.ctrlKey) {
      if (key === "z" && !event.repeat) {
        event.preventDefault();
        undo();
      }
      return;
    }
    if (key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (!el.help.hidden) {
      if (key === "Escape") toggleHelp(false);
      return;
    }
    if (instructions.isOpen()) {
      if (key === "Escape" || (key === "i" && !hotkeys.has(key))) {
        event.preventDefault();
        instructions.toggle(false);
      }
      return; // class keys wait while they are open
    }
    // A class's key wins over the page's own (an older project's class may hold o or i).
    if (!hotkeys.has(key) && key === "i" && instructions.available()) {
      event.preventDefault();
      if (!event.repeat) instructions.toggle(true);
      return;
    }
    if (!hotkeys.has(key) && viewer.handleKey(key, event.repeat)) {
      event.preventDefault(); // zoom keys may repeat while held
      return;
    }
    if (event.repeat) return; // a held key must not label a run of images
    const onControl = event.target && /^(BUTTON|A)$/.test(event.target.tagName);
    let handled = true;
    if (hotkeys.has(key)) multi ? toggle(hotkeys.get(key)) : answer(hotkeys.get(key), false);
    else if (key === "s") answer(null, true);
    else if (unsureKey && key === unsureKey) answer(null, false, null, true);
    else if (key === "u" || key === "z") undo();
    else if (multi && key === "Enter" && !onControl) submitSet();
    else if (key === "a" || (key === "Enter" && !onControl)) acceptGuess();
    else handled = false;
    if (handled) event.preventDefault();
  });

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.submitter;
    if (!button) return;
    button.blur(); // keys go back to the page, not to the clicked button
    if (button.id === "undo-button") undo();
    else if (button.id === "skip-button") answer(null, true);
    else if (button.id === "unsure-button") answer(null, false, null, true);
    else if (button.id === "set-button") submitSet();
    else if (button.value) answer(button.value, false);
  });

  // A clicked class toggle gives the keys back to the page (Enter saves, not re-toggles).
  if (multi) classButtons.forEach((b) => b.addEventListener("change", () => { b.blur(); showSetButton(); }));

  document.getElementById("help-button").addEventListener("click", () => toggleHelp());
  document.getElementById("help-close").addEventListener("click", () => toggleHelp(false));
  el.help.addEventListener("click", (event) => event.target === el.help && toggleHelp(false));
  root.querySelectorAll("#check-again").forEach((b) => b.addEventListener("click", checkAgain));

  window.addEventListener("beforeunload", (event) => {
    if (!state.queue.length) return;
    event.preventDefault();
    event.returnValue = "Some answers are not saved yet. Leave anyway?";
  });

  // --- start --------------------------------------------------------------------------

  root.dataset.pending = "0";
  if (state.current) show(state.current, el.image);
  else show(null);
  if (state.next) preload(state.next);
  // For tests and debugging: server operations still queued; whether the prefetched image is loaded.
  window.labeler = {
    pending: () => state.queue.length,
    prefetchReady: () => !state.next || Boolean(state.nextImage && state.nextImage.complete),
    refreshes: () => state.refreshes,
    current: () => (state.current ? state.current.id : null),
    prefetched: () => (state.next ? state.next.id : null),
    view: () => viewer.state(),
  };
  // Live updates: a new queue from the trainer, or a socket back after a drop (events may
  // have been missed), refresh the prefetched item. Without live.js the page works as before.
  if (window.Live && root.dataset.project) {
    window.Live.connect(root.dataset.project, {
      onQueue: refreshQueue,
      onReconnect: refreshQueue,
      onInstructions: instructions.showVersion,
    });
  }
  updateIdle();
})();
