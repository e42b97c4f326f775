// version-sidecar client: listens to the version stream and logs each version it hears.
(function () {
  "use strict";
  var script = document.currentScript;
  var streamUrl = (script && script.dataset.stream) ||
    new URL("version", script ? script.src : location.href).href;
  console.log("[version-sidecar] Establishing connection to " + streamUrl);
  var source = new EventSource(streamUrl);
  source.addEventListener("open", function () {
    console.log("[version-sidecar] Connection opened");
  });
  source.addEventListener("version", function (event) {
    var version = JSON.parse(event.data).version;
    console.log("[version-sidecar] Version received: " + version);
  });
  source.addEventListener("error", function () {
    console.log("[version-sidecar] Connection error (readyState " + source.readyState + ")");
  });
})();
