// version-sidecar client: offers a reload when a new version of the app is deployed.
// Usage, data-* attributes, events: README, "Using it from a page".
(function () {
  "use strict";
  if (window.versionSidecar) return; // the script was included twice

  var script = document.currentScript || {};
  var data = script.dataset || {};
  var streamUrl = new URL(data.stream || "version", script.src || location.href).href;
  var countdownSeconds = data.countdown === undefined ? 30 : Math.max(0, parseInt(data.countdown, 10) || 0);
  var silent = data.mode === "silent";
  var texts = {
    message: data.textMessage || "A new version ({version}) is available.",
    reload: data.textReload || "Reload",
    later: data.textLater || "Later",
    countdown: data.textCountdown || "Reloading in {seconds} s.",
    unsaved: data.textUnsaved || "You have unsaved changes, so this page will not reload by itself."
  };
  var LOG = "[version-sidecar] ";
  var RELOADED_FOR = "version-sidecar:reloaded-for";

  // What this page knows

  var pageVersion = document.documentElement.getAttribute("data-app-version") || null;
  var latestVersion = null; // the last version announced
  var offered = null; // the new version the toast (or the app) was told about
  var dismissed = null; // the version the user said "Later" to
  var deadline = 0; // when the countdown reloads (ms since epoch), 0 = it does not
  var formDirty = false;

  function log(text) {
    console.log(LOG + text);
  }

  // The reload-loop guard: the version this tab last reloaded for, kept in sessionStorage
  // (it lives across reloads; it throws in some sandboxed frames: then there is no guard).
  function reloadedFor(version) {
    try {
      if (version === undefined) return sessionStorage.getItem(RELOADED_FOR);
      sessionStorage.setItem(RELOADED_FOR, version);
    } catch (error) { /* no guard */ }
  }
  if (reloadedFor() === pageVersion) reloadedFor(""); // that reload worked

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

  function reload() {
    reloadedFor(latestVersion);
    log("Reloading for version " + latestVersion);
    location.reload();
  }

  // Called for every version heard, from the stream or from the leader tab.
  function receive(version) {
    log("Version update received: " + version + " (current: " + (pageVersion || "none yet") + ")");
    latestVersion = version;
    if (!pageVersion) pageVersion = version;
    if (version === pageVersion) { // e.g. a rollback: nothing to offer any more
      offered = null;
      deadline = 0;
      render();
      return;
    }
    if (version === offered || version === dismissed) return; // a heartbeat: already handled
    offered = version;
    dismissed = null;
    var event = new CustomEvent("version-sidecar:update", {
      cancelable: true,
      detail: { oldVersion: pageVersion, newVersion: version }
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
    var looped = reloadedFor() === version; // we reloaded for it, yet the page is old (cached)
    if (looped) log("Reloaded once for " + version + " but still at " + pageVersion + ": no automatic reload");
    deadline = countdownSeconds && !formDirty && !looped ? Date.now() + countdownSeconds * 1000 : 0;
    if (document.hidden) log("New version " + version + " available; the toast waits until the tab is visible");
    render();
  }

  // The toast

  var host, toast, messageLine, countdownLine, ticker;
  var position = /^(top|bottom)-(left|right)$/.test(data.position) ? data.position : "bottom-right";
  var STYLE =
    ".toast{all:initial;display:block;max-width:22rem;padding:14px 16px;" +
    "border-radius:10px;background:#1f2430;color:#f5f7fa;box-shadow:0 6px 24px rgba(0,0,0,.3);" +
    "font:14px/1.45 system-ui,sans-serif;animation:in .2s ease-out}" +
    "p{margin:0 0 10px}.countdown{color:#b8c0cc;font-size:13px}.countdown:empty{display:none}" +
    ".actions{display:flex;gap:8px}" +
    "button{font:inherit;font-weight:600;border-radius:6px;padding:6px 14px;cursor:pointer;" +
    "border:1px solid #5b6577;background:transparent;color:inherit}" +
    "button.primary{background:#3b82f6;border-color:#3b82f6;color:#fff}" +
    "button:focus-visible{outline:2px solid #93c5fd;outline-offset:2px}" +
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
    actions.appendChild(button(texts.later, "", later));
    toast.appendChild(messageLine);
    toast.appendChild(countdownLine);
    toast.appendChild(actions);
    toast.addEventListener("keydown", function (event) {
      if (event.key === "Escape") later();
    });
    root.appendChild(toast);
  }

  function later() {
    log("Later: no toast until a further version");
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
    if (deadline && deadline <= Date.now()) return reload(); // it ran out while the tab was hidden
    if (!host) buildToast();
    var parts = texts.message.split("{version}");
    messageLine.textContent = parts[0];
    for (var i = 1; i < parts.length; i++) { // textContent only: a version is never markup
      messageLine.appendChild(element("strong", {}, offered));
      messageLine.appendChild(document.createTextNode(parts[i]));
    }
    if (!host.isConnected) {
      (document.body || document.documentElement).appendChild(host);
      log("New version " + offered + " available; toast shown");
    }
    tick();
    if (deadline) ticker = setInterval(tick, 250);
  }

  function tick() {
    var left = Math.ceil((deadline - Date.now()) / 1000);
    if (deadline && left <= 0) return reload();
    countdownLine.textContent = deadline ? texts.countdown.replace("{seconds}", left) : formDirty ? texts.unsaved : "";
  }

  document.addEventListener("visibilitychange", render);

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

  // One stream per browser: one tab (the leader) holds the EventSource and relays each
  // version to the others. The election runs on BroadcastChannel alone, so it works on
  // plain-HTTP origins too, where the Web Locks API does not exist.

  var BEAT_MS = 1000; // the leader says so this often
  var LEADER_TIMEOUT_MS = 3500; // silence after which followers elect a new leader
  var CLAIM_MS = 250; // how long a claim waits for objections
  var tabId = Math.random().toString(36).slice(2);
  var channel = window.BroadcastChannel ? new BroadcastChannel("version-sidecar " + streamUrl) : null;
  var role = "electing"; // "electing", "leader" or "follower"
  var term = 0; // when this tab became leader; the newest leader wins a conflict
  var leaderSeen = 0;
  var source = null;
  var failures = 0;
  var reconnectTimer, claimTimer, beatTimer;

  function post(message) {
    message.from = tabId;
    if (channel) channel.postMessage(message);
  }

  function claim() {
    role = "electing";
    post({ type: "claim" });
    clearTimeout(claimTimer);
    claimTimer = setTimeout(function () {
      if (role === "electing") lead();
    }, CLAIM_MS);
  }

  function lead() {
    role = "leader";
    term = Date.now();
    if (channel) log("This tab leads: it holds the one connection for all tabs");
    beat();
    beatTimer = setInterval(beat, BEAT_MS);
    connect();
  }

  function beat() {
    post({ type: "leader", term: term, version: latestVersion });
  }

  function follow(leader) {
    if (role === "leader") {
      log("Another tab leads: closing this tab's connection");
      clearInterval(beatTimer);
      disconnect();
    }
    if (role !== "follower") log("Following tab " + leader + ", which holds the connection");
    role = "follower";
    leaderSeen = Date.now();
  }

  if (channel) channel.onmessage = function (event) {
    var message = event.data || {};
    if (message.type === "leader") {
      // Two leaders (after a stalled tab woke up): the newer one stays, the other follows.
      if (role === "leader" && (message.term < term || (message.term === term && message.from < tabId))) return;
      follow(message.from);
      if (message.version && message.version !== latestVersion) receive(message.version);
    } else if (message.type === "claim") {
      if (role === "leader") beat(); // tell the newcomer who leads
      else if (role === "electing" && message.from < tabId) follow(message.from); // the smaller id wins
    } else if (message.type === "version" && role === "follower") {
      leaderSeen = Date.now();
      receive(message.version);
    } else if (message.type === "bye" && role === "follower") {
      claim();
    }
  };

  setInterval(function () {
    if (role === "follower" && Date.now() - leaderSeen > LEADER_TIMEOUT_MS) {
      log("The leading tab went quiet");
      claim();
    }
  }, BEAT_MS);

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
      var version = JSON.parse(event.data).version;
      post({ type: "version", version: version });
      receive(version);
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

  function disconnect() {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    source = null;
  }

  window.addEventListener("pagehide", function () {
    if (role !== "leader") return;
    clearInterval(beatTimer);
    disconnect();
    post({ type: "bye" });
    role = "electing"; // if the page comes back from the back-forward cache, it claims again
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && role === "electing") claim();
  });

  window.versionSidecar = {
    get pageVersion() { return pageVersion; },
    get latestVersion() { return latestVersion; },
    get updateAvailable() { return !!latestVersion && latestVersion !== pageVersion; },
    get role() { return role; },
    reload: reload
  };

  if (channel) claim();
  else lead(); // no BroadcastChannel: every tab keeps its own stream
})();
