// Live progress for a run's page: the server's events update the bars; without this script the
// page reloads itself (<meta http-equiv="refresh">), so nothing depends on it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var meta = document.querySelector('meta[http-equiv="refresh"]');
  if (meta) { meta.parentNode.removeChild(meta); }
  var source = new EventSource(live.getAttribute("data-events"));
  function setText(id, text) {
    var node = document.getElementById(id);
    if (node) { node.textContent = text; }
  }
  function setBar(id, value, max) {
    var bar = document.getElementById(id);
    if (bar) { bar.max = Math.max(max, 1); bar.value = value; }
  }
  function duration(seconds) {
    // As the page writes it: "1 h 5 min", "2 min 5 s", "40 s".
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = Math.round(seconds % 60);
    if (hours) { return hours + " h " + minutes + " min"; }
    if (minutes) { return minutes + " min " + rest + " s"; }
    return rest + " s";
  }
  source.onmessage = function (event) {
    var state = JSON.parse(event.data);
    if (state.total !== undefined) {
      setBar("progress", state.finished, state.total);
      setBar("submitted", state.submitted, state.total);
      setText("progress-text", state.finished.toLocaleString() + " of " + state.total.toLocaleString());
      setText("eta", state.eta_seconds === null ? "" : "About " + duration(state.eta_seconds) + " left.");
      setText("stop", state.stop || "");
    }
    if (state.done) {
      // Driven by another process (no live counts here): look again as the page would.
      source.close();
      var wait = state.total === undefined ? 3000 : 200;
      window.setTimeout(function () { window.location.reload(); }, wait);
    }
  };
  source.onerror = function () {
    source.close();
    window.setTimeout(function () { window.location.reload(); }, 3000);
  };
})();
