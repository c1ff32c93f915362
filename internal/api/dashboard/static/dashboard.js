// Skiff dashboard: the little the pages need a script for. Everything
// else (charts, forms, actions) works without it.
"use strict";

// Forms that change something big ask first.
document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (e) {
    if (!window.confirm(form.dataset.confirm)) e.preventDefault();
  });
});

// The processes section refreshes itself while the page is shown.
(function () {
  var ps = document.getElementById("ps");
  if (!ps || !window.fetch) return;
  setInterval(function () {
    if (document.hidden) return;
    fetch(ps.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) ps.innerHTML = html; })
      .catch(function () {});
  }, 3000);
})();

// The live log tail: server-sent events from the dashboard, which follows
// the API's logs. EventSource reconnects by itself, resuming after the
// last line it got.
(function () {
  var list = document.querySelector("ol.log");
  if (!list || !window.EventSource) return;
  var state = document.querySelector(".logstate");
  var source = document.getElementById("log-source");
  var maxLines = 500;
  var es = null;

  function add(cls, parts) {
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
    var li = document.createElement("li");
    li.className = cls;
    parts.forEach(function (p) {
      var span = document.createElement("span");
      span.className = p[0];
      span.textContent = p[1];
      li.appendChild(span);
    });
    list.appendChild(li);
    while (list.children.length > maxLines) list.removeChild(list.firstChild);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function connect() {
    if (es) es.close();
    list.textContent = "";
    var url = list.dataset.src + (source.value ? "?source=" + encodeURIComponent(source.value) : "");
    es = new EventSource(url);
    es.onopen = function () { state.textContent = "live"; };
    es.onerror = function () { state.textContent = "reconnecting…"; };
    es.onmessage = function (e) {
      var l = JSON.parse(e.data);
      var t = new Date(l.time);
      add("line", [["t", t.toLocaleTimeString() + " "], ["p", (l.process || l.source) + " "], ["m", l.line]]);
    };
    es.addEventListener("problem", function (e) {
      var p = JSON.parse(e.data);
      add("problem", [["m", p.Message + (p.Hint ? " " + p.Hint : "")]]);
      state.textContent = "stopped";
      es.close();
    });
  }
  source.addEventListener("change", connect);
  connect();
})();
