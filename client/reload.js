// version-sidecar client: offers a reload when a new version of the app is deployed.
// Usage, data-* attributes, events: docs/client.md.
(function () {
  "use strict";
  var LOG = "[version-sidecar] ";
  // Included twice? (Checked on our API: an element with id="versionSidecar" is window.versionSidecar too.)
  if (window.versionSidecar && typeof window.versionSidecar.reload === "function") return;
  // Below the support floor (docs/client.md, Browsers): nothing, never an error.
  if (!window.EventSource || !window.URL || !window.CustomEvent || !document.documentElement.attachShadow) return;

  // Our own tag: document.currentScript, which is null in a <script type="module">: then by its src.
  var script = document.currentScript || [].filter.call(document.scripts, function (tag) {
    return /\/reload\.js([?#]|$)/.test(tag.src);
  })[0];
  if (!script) return console.warn(LOG + "Not started: no <script> tag whose src ends in /reload.js");
  var data = script.dataset;
  var streamUrl = new URL(data.stream || "version", script.src).href;
  var countdownSeconds = data.countdown === undefined ? 30 : Math.max(0, parseInt(data.countdown, 10) || 0);
  var silent = data.mode === "silent";
  var texts = {
    message: data.textMessage || "A new version ({version}) is available.",
    reload: data.textReload || "Reload",
    later: data.textLater || "Later",
    countdown: data.textCountdown || "Reloading in {seconds} s.",
    notes: data.textNotes || "What's new",
    unsaved: data.textUnsaved || "You have unsaved changes, so this page will not reload by itself.",
    broken: data.textBroken || "Part of this page failed to load: it needs a reload."
  };
  var RELOADED_FOR = "version-sidecar:reloaded-for"; // this tab's (sessionStorage)
  var TRIP = "version-sidecar:reloaded-from-to"; // this tab's last reload: the version it left, the one it wanted
  var SUPERSEDED = "version-sidecar:superseded"; // the browser's (localStorage)

  var pageVersion = document.documentElement.getAttribute("data-app-version") || null;
  var latestVersion = null; // the last version announced
  var offered = null; // the new version the toast (or the app) was told about
  var notes = null; // the offered version's release notes URL
  var required = false; // the offered version must be loaded: no Later
  var dismissed = null; // the version the user said "Later" to
  var deadline = 0; // when the countdown reloads (ms since epoch), 0 = it does not
  var formDirty = false;
  var broken = false; // a chunk failed to load and we could not reload by ourselves

  function log(text) {
    console.log(LOG + text);
  }

  // Lists of versions kept across reloads, one a line (a version holds no line break), in
  // "sessionStorage" or "localStorage"; storage throws in some sandboxed frames: then none.
  function listed(storage, key) {
    try {
      return (window[storage].getItem(key) || "").split("\n");
    } catch (error) {
      return [];
    }
  }
  function store(storage, key, text) {
    try {
      window[storage].setItem(key, text);
    } catch (error) { /* not kept */ }
  }
  function remember(storage, key, version, kept) {
    var list = listed(storage, key).filter(function (item) { return item && item !== version; });
    if (kept) list.push(version);
    store(storage, key, list.slice(-20).join("\n"));
  }

  // The loop guard: a tab reloads by itself at most once for a version, however streams and
  // pages disagree during a rollout. A reload that landed on the version it wanted shows the
  // version left behind is superseded (the sidecar and the app both moved on).
  var trip = listed("sessionStorage", TRIP);
  store("sessionStorage", TRIP, "");
  if (trip[1] && trip[1] === pageVersion) remember("localStorage", SUPERSEDED, trip[0], true);

  // An edited form field is unsaved work: never reload over it by ourselves.
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field || !(field.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(field.tagName))) return;
    if (!formDirty) log("A form field was edited: no automatic reload");
    formDirty = true;
    if (deadline) {
      deadline = 0;
      render();
    }
  }, true);

  // Under a service worker (a PWA), a plain reload brings back its cached old page: first
  // update it, tell a new waiting worker to take over (Workbox's SKIP_WAITING message) and
  // reload once it controls the page, or after 5 s at most.
  function reload() {
    remember("sessionStorage", RELOADED_FOR, latestVersion, true);
    store("sessionStorage", TRIP, pageVersion + "\n" + latestVersion);
    log("Reloading for version " + latestVersion);
    var workers = navigator.serviceWorker;
    if (!workers || !workers.controller) return location.reload();
    var go = function () {
      if (go) location.reload();
      go = null;
    };
    setTimeout(go, 5000);
    workers.addEventListener("controllerchange", go);
    workers.getRegistration().then(function (registration) {
      return registration.update().then(function () {
        var worker = registration.waiting || registration.installing;
        if (!worker) return go(); // unchanged
        log("Activating the new service worker first");
        var activate = function () {
          if (worker.state === "installed") worker.postMessage({ type: "SKIP_WAITING" });
        };
        worker.addEventListener("statechange", activate);
        activate();
      });
    }).then(null, go);
  }

  // Called for every version heard, from the stream or from the leader tab, with its release
  // notes URL and required flag where the deploy gives them.
  function receive(version, notesUrl, mustReload) {
    log("Version update received: " + version + " (current: " + (pageVersion || "none yet") + ")");
    latestVersion = version;
    if (!pageVersion) pageVersion = version;
    if (version === pageVersion) { // e.g. a rollback: nothing to offer any more
      offered = null;
      deadline = 0;
      render();
      return;
    }
    if (healChunk()) return;
    if (version === offered || version === dismissed) return; // a heartbeat: already handled
    offered = version;
    notes = notesUrl || null;
    required = !!mustReload;
    dismissed = null;
    var event = new CustomEvent("version-sidecar:update", {
      cancelable: true,
      detail: { oldVersion: pageVersion, newVersion: version, notes: notes, required: required }
    });
    if (!window.dispatchEvent(event)) {
      log("New version " + version + ": the page cancelled the update event and handles it");
      offered = null; // the app's UI owns it now
      dismissed = version;
      return;
    }
    if (silent) {
      log("New version " + version + " available; the next link loads it in full (silent mode)");
      return;
    }
    var looped = listed("sessionStorage", RELOADED_FOR).indexOf(version) >= 0; // reloaded for it once already
    if (looped) log("Reloaded once for " + version + " but still at " + pageVersion + ": no automatic reload");
    deadline = countdownSeconds && !formDirty && !looped ? Date.now() + countdownSeconds * 1000 : 0;
    if (document.hidden) log("New version " + version + " available; the toast waits until the tab is visible");
    render();
  }

  // The toast

  var host, toast, messageLine, countdownLine, laterButton, notesLink, ticker;
  var position = /^(top|bottom)-(left|right)$/.test(data.position) ? data.position : "bottom-right";
  var STYLE =
    ".toast{all:initial;display:block;max-width:22rem;padding:14px 16px;" +
    "border-radius:10px;background:#1f2430;color:#f5f7fa;box-shadow:0 6px 24px rgba(0,0,0,.3);" +
    "font:14px/1.45 system-ui,sans-serif;animation:in .2s ease-out}" +
    "p{margin:0 0 10px;overflow-wrap:anywhere}.countdown{color:#b8c0cc;font-size:13px}.countdown:empty{display:none}" +
    ".actions{display:flex;gap:8px}" +
    "button{font:inherit;font-weight:600;border-radius:6px;padding:6px 14px;cursor:pointer;" +
    "border:1px solid #5b6577;background:transparent;color:inherit}" +
    "button.primary{background:#3b82f6;border-color:#3b82f6;color:#fff}" +
    "button:focus-visible{outline:2px solid #93c5fd;outline-offset:2px}a{color:#93c5fd}" +
    "@keyframes in{from{opacity:0;transform:translateY(8px)}}" +
    "@media (prefers-reduced-motion:reduce){.toast{animation:none}}";

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    for (var name in attributes) node.setAttribute(name, attributes[name]);
    if (text) node.textContent = text;
    return node;
  }

  function button(label, className, onClick) {
    var node = element("button", { type: "button", "class": className }, label);
    node.addEventListener("click", onClick);
    return node;
  }

  function buildToast() {
    // An element name no page styles, inline !important styles that beat `* { all: unset }`
    // (set through the CSSOM, which a Content-Security-Policy allows), and a shadow root
    // that keeps the page's CSS away from the toast.
    host = element("version-sidecar-toast");
    var hostStyle = "all:initial;display:block;position:fixed;z-index:2147483647;" +
      position.replace("-", ":16px;") + ":16px"; // ...;bottom:16px;right:16px
    hostStyle.split(";").forEach(function (rule) {
      host.style.setProperty(rule.split(":")[0], rule.split(":")[1], "important");
    });
    var root = host.attachShadow({ mode: "open" });
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch (error) { // older browsers: a <style> element
      root.appendChild(element("style", {}, STYLE));
    }
    toast = element("div", { "class": "toast", role: "status", "aria-live": "polite" });
    messageLine = element("p");
    countdownLine = element("p", { "class": "countdown", "aria-live": "off" }); // no announcement per tick
    var actions = element("div", { "class": "actions" });
    actions.appendChild(button(texts.reload, "primary", reload));
    actions.appendChild(laterButton = button(texts.later, "", later));
    notesLink = element("a", { target: "_blank", rel: "noopener noreferrer" }, texts.notes);
    toast.appendChild(messageLine);
    toast.appendChild(countdownLine);
    toast.appendChild(actions);
    toast.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !required) later();
    });
    root.appendChild(toast);
  }

  function later() {
    log("Later: no toast until a further version");
    broken = false;
    dismissed = offered;
    offered = null;
    deadline = 0;
    render();
  }

  // Brings the toast in line with the state: hidden, or showing `offered` and the countdown.
  function render() {
    clearInterval(ticker);
    if (!offered || silent || document.hidden) {
      if (host) host.remove();
      return;
    }
    if (deadline && deadline <= Date.now()) { // it ran out while the tab was hidden: a short one, seen
      deadline = Date.now() + Math.min(10, countdownSeconds) * 1000;
      log("The countdown ran out while the tab was hidden: " + Math.min(10, countdownSeconds) + " s more");
    }
    if (!host) buildToast();
    var parts = texts.message.split("{version}");
    messageLine.textContent = parts[0];
    for (var i = 1; i < parts.length; i++) { // textContent only: a version is never markup
      messageLine.appendChild(element("strong", {}, offered));
      messageLine.appendChild(document.createTextNode(parts[i]));
    }
    if (notes) {
      notesLink.href = notes;
      messageLine.append(" ", notesLink);
    }
    laterButton.style.display = required ? "none" : "";
    if (!host.isConnected) {
      (document.body || document.documentElement).appendChild(host);
      log("New version " + offered + " available; toast shown");
    }
    tick();
    if (deadline) ticker = setInterval(tick, 250);
  }

  function tick() {
    var left = Math.ceil((deadline - Date.now()) / 1000);
    if (deadline && left <= 0) {
      deadline = 0; // once: a reload under a service worker takes a moment
      return reload();
    }
    countdownLine.textContent = deadline ? texts.countdown.replace("{seconds}", left) :
      broken ? texts.broken : formDirty ? texts.unsaved : "";
  }

  document.addEventListener("visibilitychange", render);

  // A deploy's worst symptom: the open page asks for a code chunk the deploy deleted. When a
  // version other than the page's is announced (or is within CHUNK_WAIT of the failure: the app
  // can be deployed a moment before the sidecar says so), reload into it at once, no countdown.
  // Not over unsaved input, not twice for one version (then the toast says why), and not when the
  // announced version is the page's own (a flaky network is not a deploy).
  var CHUNK_WAIT = 10000;
  var chunkFailedAt = 0; // when a chunk failed to load (ms since epoch), 0 = none waiting

  function chunkFailed(what) {
    chunkFailedAt = Date.now();
    log("A chunk failed to load: " + what);
    healChunk();
  }

  // True when it acted on a failed chunk: reloaded, or showed the toast saying a reload is needed.
  function healChunk() {
    if (!chunkFailedAt || !latestVersion || latestVersion === pageVersion) return false;
    if (Date.now() - chunkFailedAt > CHUNK_WAIT) return chunkFailedAt = 0;
    chunkFailedAt = 0;
    if (formDirty || listed("sessionStorage", RELOADED_FOR).indexOf(latestVersion) >= 0) {
      log("No reload for the failed chunk: " + (formDirty ? "a form field was edited" : "reloaded for " + latestVersion + " once already"));
      broken = true;
      offered = latestVersion;
      dismissed = null;
      deadline = 0;
      render();
    } else {
      log("Reloading at once for the failed chunk");
      reload();
    }
    return true;
  }

  window.addEventListener("vite:preloadError", function (event) {
    chunkFailed(event.payload);
  });
  // A rejected import(): webpack's ChunkLoadError, or the engine's own message (Chromium, Firefox, WebKit).
  window.addEventListener("unhandledrejection", function (event) {
    var error = event.reason || {};
    if (error.name === "ChunkLoadError" || /dynamically imported module|Importing a module script failed/.test(error.message)) {
      chunkFailed(error.message);
    }
  });

  // Silent mode: once a new version is out, a same-origin link click is a full page load,
  // so a single-page app picks it up on its next navigation.
  window.addEventListener("click", function (event) {
    if (!silent || !offered || event.button || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var link = event.target.closest && event.target.closest("a[href]");
    if (!link || link.origin !== location.origin || link.target || link.hasAttribute("download")) return;
    if (link.pathname === location.pathname && link.search === location.search && link.hash) return;
    event.stopImmediatePropagation(); // the app's router never sees it; the browser navigates
    log("Loading " + link.href + " in full for version " + offered);
  }, true);

  // One stream per browser: the leading tab holds the EventSource and relays versions over
  // BroadcastChannel. Leading is holding an IndexedDB connection; the others wait on an
  // upgrade of that database, which the browser blocks until it releases the leader's
  // connection as the tab closes, crashes or navigates away: no goodbye or timer needed,
  // so throttling cannot unseat a hidden leader. Works on plain HTTP (no Web Locks).

  var DATABASE = "version-sidecar " + streamUrl;
  var shared = !!(window.BroadcastChannel && window.indexedDB); // else: a stream per tab
  var channel = null;
  var role = "electing"; // "electing", "leader" or "follower"
  var connection = null; // the leader's
  var attempt = 0; // bumped as the page leaves: answers to older requests are dropped
  var source = null;
  var failures = 0;
  var reconnectTimer;
  var heard = null; // the last version event's data the leader passed on
  var doubts = 0; // fresh streams in a row that announced a superseded version

  function post(message) {
    if (channel) channel.postMessage(message);
  }

  function join() {
    attempt++;
    channel = new BroadcastChannel(DATABASE);
    channel.onmessage = function (event) {
      var message = event.data || {};
      if (message.type === "hello" && role === "leader") post({ type: "version", heard: heard });
      if (message.type === "version" && role !== "leader") {
        follow();
        if (message.heard) receive(message.heard.version, message.heard.notes, message.heard.required);
      }
      if (message.type === "deleting") stepAside();
    };
    post({ type: "hello" }); // the leader, if any, answers with the latest version
    ask(0);
  }

  // Opening the database with an upgrade (above its version) is winning; blocked is following.
  function ask(version) {
    var mine = attempt;
    var won = false;
    var request;
    try {
      request = version ? indexedDB.open(DATABASE, version) : indexedDB.open(DATABASE);
    } catch (error) { // e.g. storage denied in a sandboxed frame
      return alone();
    }
    request.onblocked = function () {
      if (mine === attempt) follow();
    };
    request.onupgradeneeded = function () {
      won = true;
    };
    request.onsuccess = function () {
      var opened = request.result;
      if (mine !== attempt) return opened.close(); // the page left meanwhile
      if (won) return lead(opened);
      opened.close(); // another tab leads, or just took over: wait behind it
      ask(opened.version + 1);
    };
    request.onerror = function (event) {
      event.preventDefault();
      if (mine === attempt) request.error.name === "VersionError" ? ask(0) : alone(); // VersionError: it went higher
    };
  }

  function alone() {
    log("No BroadcastChannel or IndexedDB here: this tab keeps a connection of its own");
    shared = false;
    if (channel) channel.close();
    channel = null;
    lead(null);
  }

  function lead(opened) {
    connection = opened;
    if (opened) { // kept through an upgrade's versionchange: that is the others waiting
      opened.onclose = function () { // the browser closed it (say, site data cleared)
        resign();
        join();
      };
      opened.onversionchange = function (event) { // a delete from elsewhere (a worker, say)
        if (event.newVersion === null) stepAside();
      };
      log("This tab leads: it holds the one connection for all tabs");
    }
    role = "leader";
    if (heard) post({ type: "version", heard: heard });
    connect();
  }

  function follow() {
    if (role !== "follower") log("Following the leading tab, which holds the connection");
    role = "follower";
  }

  // The page's own IndexedDB work comes first. A delete of our database (say, of every database
  // at logout) queues behind a waiting tab's blocked upgrade, unseen by the leader: so the tab
  // that deletes says so (deleteDatabase passes every call on unchanged), every tab lets go at
  // once and elects again behind the delete.
  function stepAside() {
    log("Our database is being deleted: electing again after it");
    resign();
    join();
  }
  if (shared) {
    var deleteDatabase = indexedDB.deleteDatabase;
    indexedDB.deleteDatabase = function (name) {
      var request = deleteDatabase.apply(this, arguments);
      if (channel && String(name) === DATABASE) {
        post({ type: "deleting" });
        stepAside();
      }
      return request;
    };
  }

  function resign() {
    attempt++;
    disconnect();
    if (connection) connection.close();
    connection = null;
    if (channel) channel.close();
    channel = null;
    role = "electing";
  }

  // The stream (leader only)

  function connect() {
    clearTimeout(reconnectTimer);
    log("Establishing connection to " + streamUrl);
    source = new EventSource(streamUrl);
    source.addEventListener("open", function () {
      failures = 0;
      log("Connection opened");
    });
    source.addEventListener("version", function (event) {
      var data = JSON.parse(event.data);
      if (!vetted(data.version)) return;
      heard = data;
      post({ type: "version", heard: data });
      receive(data.version, data.notes, data.required);
    });
    source.addEventListener("error", function () {
      var state = source.readyState;
      if (state !== EventSource.CLOSED) {
        return log("Connection error (readyState " + state + ": CONNECTING); the browser retries");
      }
      // Closed for good (e.g. 503 when the sidecar is full): retry ourselves, backing off.
      var delay = Math.min(60, Math.pow(2, failures++)) * (0.5 + Math.random() / 2);
      log("Connection error (readyState " + state + ": CLOSED); reconnecting in " + delay.toFixed(1) + " s");
      disconnect();
      reconnectTimer = setTimeout(connect, delay * 1000);
    });
  }

  // A rollout behind a load balancer: replicas disagree for a while. A version this browser has
  // seen superseded is not offered again (a replica that lags) unless three fresh streams in a
  // row announce it: then the deployed version went back, and stays.
  function vetted(version) {
    if (listed("localStorage", SUPERSEDED).indexOf(version) < 0) return !(doubts = 0);
    if (++doubts > 2) {
      log("Version " + version + " is back: a rollback");
      remember("localStorage", SUPERSEDED, version);
      return !(doubts = 0);
    }
    log("Version " + version + " was superseded: not offered; asking another stream");
    disconnect();
    reconnectTimer = setTimeout(connect, doubts * 1000);
  }

  function disconnect() {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    source = null;
  }

  // Back/forward cache: hold nothing while away, rejoin on return.
  window.addEventListener("pagehide", function () {
    if (shared) resign();
    else disconnect();
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    if (shared) join();
    else connect();
    render();
  });

  window.versionSidecar = {
    get pageVersion() { return pageVersion; },
    get latestVersion() { return latestVersion; },
    get updateAvailable() { return !!latestVersion && latestVersion !== pageVersion; },
    get role() { return role; },
    reload: reload
  };

  if (shared) join();
  else alone();
})();
