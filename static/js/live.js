/*
 * Live updates for a project's pages: one websocket per project (/ws/projects/<pk>/) that
 * carries the trainer's status, "a new queue is ready" and "the instructions changed" events.
 *
 *   const live = Live.connect(projectId, {onStatus(status), onQueue(version), onInstructions(version),
 *                                         onReconnect(), onConnection(online)});
 *
 * The socket reconnects with exponential backoff and pings every 25 s (a socket that stops
 * answering is closed and reopened). While it is down, the page is still usable: the status
 * is polled over HTTP every 10 s, and a model version change seen there is reported as a
 * queue event, since the socket's own event was missed. `onReconnect` runs when a socket
 * opens again after a drop, so a page can refetch what it may have missed.
 *
 * Every element marked `data-trainer-status` (templates/annotator/_trainer_status.html, an
 * empty shell) is rendered here and only here: on page load from the status the server put
 * inside it (a JSON script), then on every status from the socket or the poll. One with
 * `data-project` connects by itself, so a page needs only the partial and this script.
 */
(function () {
  "use strict";

  // Timings; a test may shorten them with `window.LiveConfig = {pollMs, backoffMs, ...}` set
  // before this script runs.
  const config = Object.assign(
    { heartbeatMs: 25000, pongTimeoutMs: 10000, pollMs: 10000, backoffMs: [1000, 2000, 4000, 8000, 15000, 30000] },
    window.LiveConfig || {}
  );
  const HEARTBEAT_MS = config.heartbeatMs;
  const PONG_TIMEOUT_MS = config.pongTimeoutMs;
  const POLL_MS = config.pollMs;
  const BACKOFF_MS = config.backoffMs;
  const TRAINING_PHASES = new Set(["pretraining", "training"]);
  const PHASE_LABELS = {
    waiting: "Waiting for the trainer",
    pretraining: "Pretraining",
    training: "Training",
    "up-to-date": "Up to date",
    paused: "Paused",
    failed: "Training failed",
  };

  const connections = new Map();

  function percent(x) {
    return Math.round(Math.max(0, Math.min(1, Number(x) || 0)) * 100);
  }

  // --- the indicator --------------------------------------------------------------------

  function part(root, name) {
    return root.querySelector('[data-ts="' + name + '"]');
  }

  function setText(node, text) {
    if (!node) return;
    node.textContent = text || "";
    node.hidden = !text;
  }

  function accuracyText(accuracy) {
    if (!accuracy || !accuracy.n || accuracy.estimate == null) return "";
    const range = accuracy.low != null && accuracy.high != null ? percent(accuracy.low) + "-" + percent(accuracy.high) + "%, " : "";
    return "accuracy " + percent(accuracy.estimate) + "% (" + range + "n=" + accuracy.n + ")";
  }

  function versionTitle(status) {
    if (status.version == null) return "";
    const kind = { pretrain: "pretrained", fast: "quick update", slow: "full retrain" }[status.version_kind] || status.version_kind || "";
    const labels = status.labels_used ? "trained on " + status.labels_used + " label" + (status.labels_used === 1 ? "" : "s") : "";
    return [kind, labels].filter(Boolean).join(", ");
  }

  function renderStatus(root, status) {
    if (!status) return;
    root.dataset.phase = status.phase || "unknown";
    root.title = status.detail || "";
    setText(part(root, "phase"), status.phase_label || PHASE_LABELS[status.phase] || status.phase || "");
    const version = part(root, "version");
    setText(version, status.version == null ? "" : "model v" + status.version);
    if (version) version.title = versionTitle(status);
    setText(part(root, "device"), status.device || "");
    setText(part(root, "accuracy"), accuracyText(status.accuracy));
    const error = part(root, "error");
    setText(error, status.phase === "failed" ? status.error || "" : "");
    if (error) error.title = error.textContent;

    const progress = part(root, "progress");
    if (progress) {
      const training = TRAINING_PHASES.has(status.phase);
      const known = status.progress != null;
      progress.hidden = !training;
      progress.classList.toggle("is-indeterminate", training && !known);
      if (known) {
        const p = percent(status.progress);
        progress.setAttribute("aria-valuenow", String(p));
        const bar = part(root, "bar");
        if (bar) bar.style.width = p + "%";
        setText(part(root, "percent"), p + "%");
      } else {
        progress.removeAttribute("aria-valuenow");
        setText(part(root, "percent"), "");
      }
    }
  }

  // The status the server rendered the page with (the partial's JSON script), or null.
  function embeddedStatus(root) {
    const script = root.querySelector('script[type="application/json"]');
    if (!script) return null;
    try {
      return JSON.parse(script.textContent);
    } catch (err) {
      return null;
    }
  }

  function renderOnline(root, online) {
    root.classList.toggle("is-offline", !online);
    const note = part(root, "offline");
    if (note) note.hidden = online;
  }

  function indicators(projectId) {
    return Array.from(document.querySelectorAll("[data-trainer-status]")).filter(
      (root) => !root.dataset.project || String(root.dataset.project) === String(projectId)
    );
  }

  // --- the connection -------------------------------------------------------------------

  function Connection(projectId) {
    this.projectId = projectId;
    this.handlers = [];
    this.socket = null;
    this.online = null; // null until the first socket opens or fails
    this.everOpened = false;
    this.attempt = 0;
    this.opens = 0; // sockets that worked (for tests and debugging)
    this.pongs = 0;
    this.lastStatus = null;
    this.lastVersion = undefined;
    this.timers = { reconnect: null, heartbeat: null, pong: null, poll: null };
    this.closed = false;
    this.suspended = false;
    this.statusUrl = "/projects/" + projectId + "/status/";
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    this.socketUrl = scheme + "//" + window.location.host + "/ws/projects/" + projectId + "/";
  }

  Connection.prototype.emit = function (name, ...args) {
    this.handlers.forEach((h) => {
      if (typeof h[name] !== "function") return;
      try {
        h[name](...args);
      } catch (err) {
        console.error("live: " + name + " handler failed", err);
      }
    });
  };

  Connection.prototype.open = function () {
    if (this.closed || this.suspended) return;
    clearTimeout(this.timers.reconnect);
    let socket;
    try {
      socket = new WebSocket(this.socketUrl);
    } catch (err) {
      this.dropped();
      return;
    }
    this.socket = socket;
    let greeted = false;
    socket.addEventListener("open", () => {
      if (socket === this.socket) this.startHeartbeat();
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.alive();
      if (!greeted) {
        // The server's first message (the status, sent on connect) proves the socket works;
        // only then is the backoff reset, so a socket that opens and drops at once backs off.
        greeted = true;
        this.connected();
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!message || typeof message !== "object") return;
      if (message.type === "pong") this.pongs += 1;
      else if (message.type === "status") this.status(message.status, false);
      else if (message.type === "queue") this.queue(message.version);
      else if (message.type === "instructions") this.emit("onInstructions", message.version);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      // 4403: no longer a member of this project (annotator/live/consumers.py); reconnecting
      // or polling would only be refused.
      if (event.code === 4403) {
        this.close();
        this.setOnline(false);
        return;
      }
      this.dropped();
    });
    // An "error" is always followed by "close", which does the work.
  };

  Connection.prototype.connected = function () {
    const reconnected = this.everOpened;
    this.everOpened = true;
    this.opens += 1;
    this.attempt = 0;
    this.stopPolling();
    this.setOnline(true);
    // A page whose socket was down may have missed queue events.
    if (reconnected) this.emit("onReconnect");
  };

  Connection.prototype.dropped = function () {
    this.stopHeartbeat();
    if (this.closed || this.suspended) return;
    this.setOnline(false);
    this.startPolling();
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timers.reconnect = setTimeout(() => this.open(), base * (0.75 + 0.5 * Math.random()));
  };

  Connection.prototype.reconnectNow = function () {
    if (this.closed || this.suspended || this.socket) return;
    this.attempt = 0;
    this.open();
  };

  Connection.prototype.setOnline = function (online) {
    if (this.online === online) return;
    this.online = online;
    indicators(this.projectId).forEach((root) => renderOnline(root, online));
    this.emit("onConnection", online);
  };

  // --- heartbeat: a ping every 25 s; no reply within 10 s closes the socket -------------

  Connection.prototype.startHeartbeat = function () {
    this.stopHeartbeat();
    this.timers.heartbeat = setInterval(() => this.ping(), HEARTBEAT_MS);
  };

  Connection.prototype.stopHeartbeat = function () {
    clearInterval(this.timers.heartbeat);
    clearTimeout(this.timers.pong);
    this.timers.heartbeat = this.timers.pong = null;
  };

  Connection.prototype.ping = function () {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    try {
      socket.send(JSON.stringify({ type: "ping" }));
    } catch (err) {
      return;
    }
    clearTimeout(this.timers.pong);
    this.timers.pong = setTimeout(() => {
      if (socket === this.socket) socket.close(); // its "close" event reconnects
    }, PONG_TIMEOUT_MS);
  };

  Connection.prototype.alive = function () {
    clearTimeout(this.timers.pong);
    this.timers.pong = null;
  };

  // --- HTTP: the first status, and polling while the socket is down -------------------

  Connection.prototype.fetchStatus = async function () {
    try {
      const response = await fetch(this.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
      if (!response.ok || !isJson) return;
      // Over HTTP a version change is the only sign of a missed queue event.
      this.status(await response.json(), !this.online);
    } catch (err) {
      // Offline too: the next poll or the socket tries again.
    }
  };

  Connection.prototype.startPolling = function () {
    if (this.timers.poll) return;
    this.fetchStatus();
    this.timers.poll = setInterval(() => this.fetchStatus(), POLL_MS);
  };

  Connection.prototype.stopPolling = function () {
    clearInterval(this.timers.poll);
    this.timers.poll = null;
  };

  // --- events ---------------------------------------------------------------------------

  Connection.prototype.status = function (status, viaHttp) {
    if (!status || typeof status !== "object") return;
    const previous = this.lastVersion;
    this.lastStatus = status;
    this.lastVersion = status.version;
    indicators(this.projectId).forEach((root) => renderStatus(root, status));
    this.emit("onStatus", status);
    if (viaHttp && previous !== undefined && status.version != null && status.version !== previous) this.queue(status.version);
  };

  Connection.prototype.queue = function (version) {
    this.emit("onQueue", version);
  };

  Connection.prototype.suspend = function () {
    this.suspended = true;
    clearTimeout(this.timers.reconnect);
    this.stopHeartbeat();
    this.stopPolling();
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close();
  };

  Connection.prototype.resume = function () {
    if (!this.suspended || this.closed) return;
    this.suspended = false;
    this.fetchStatus();
    this.reconnectNow();
  };

  Connection.prototype.close = function () {
    this.closed = true;
    clearTimeout(this.timers.reconnect);
    this.stopHeartbeat();
    this.stopPolling();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close();
    }
    connections.delete(String(this.projectId));
  };

  // --- public API -----------------------------------------------------------------------

  function connect(projectId, handlers) {
    const key = String(projectId);
    let connection = connections.get(key);
    const fresh = !connection;
    if (fresh) {
      connection = new Connection(projectId);
      connections.set(key, connection);
    }
    if (handlers) {
      connection.handlers.push(handlers);
      // A late subscriber gets what the page already knows.
      if (connection.lastStatus && typeof handlers.onStatus === "function") handlers.onStatus(connection.lastStatus);
      if (connection.online !== null && typeof handlers.onConnection === "function") handlers.onConnection(connection.online);
    }
    if (fresh) {
      connection.fetchStatus();
      connection.open();
    }
    return {
      status: () => connection.lastStatus,
      online: () => connection.online === true,
      counts: () => ({ opens: connection.opens, pongs: connection.pongs }),
      close: () => connection.close(),
    };
  }

  window.addEventListener("online", () => connections.forEach((c) => c.reconnectNow()));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") connections.forEach((c) => c.reconnectNow());
  });
  // Leaving the page closes the socket on purpose: no "paused" note while the next page loads,
  // and a page restored from the back/forward cache connects again.
  window.addEventListener("pagehide", () => connections.forEach((c) => c.suspend()));
  window.addEventListener("pageshow", (event) => event.persisted && connections.forEach((c) => c.resume()));

  window.Live = { connect, renderStatus };

  // The indicators as the server saw the trainer when it made the page, then live: pages
  // that only show the indicator need no script of their own.
  document.querySelectorAll("[data-trainer-status]").forEach((root) => {
    const bar = part(root, "bar");
    if (bar) bar.style.transition = "none"; // drawn at once on load, animated only on updates
    renderStatus(root, embeddedStatus(root));
    if (bar) {
      void bar.offsetWidth;
      bar.style.transition = "";
    }
  });
  document.querySelectorAll("[data-trainer-status][data-project]").forEach((root) => connect(root.dataset.project));
})();
