// pagerd console: keeps the incident list live. Everything works without
// this script; it only saves reloads. The server sends each changed incident
// as a rendered row ("upsert") or says it left the filter ("remove"); every
// event's id is the incident's revision, so a reconnect (EventSource sends
// Last-Event-ID) resumes where the list left off, on this node or another.
(function () {
  "use strict";
  var list = document.getElementById("incidents");
  if (!list) return;
  var live = document.getElementById("live");
  var empty = document.getElementById("empty");

  function age(ms) {
    var s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d";
  }
  function refreshAges() {
    var rows = list.querySelectorAll("li.incident");
    for (var i = 0; i < rows.length; i++) {
      var a = rows[i].querySelector(".age");
      if (a) a.textContent = age(Number(rows[i].getAttribute("data-created")));
    }
  }
  function refreshEmpty() {
    if (empty) empty.hidden = list.querySelector("li.incident") !== null;
  }
  setInterval(refreshAges, 15000);

  if (list.getAttribute("data-live") !== "yes" || !window.EventSource) return;
  var url = "/incidents/stream?" + list.getAttribute("data-query") +
    "&from=" + encodeURIComponent(list.getAttribute("data-revision"));
  var es = new EventSource(url);
  es.onopen = function () {
    if (live) { live.hidden = false; live.textContent = "live"; live.className = "live"; }
  };
  es.onerror = function () {
    if (live) { live.hidden = false; live.textContent = "reconnecting"; live.className = "live down"; }
  };
  es.addEventListener("upsert", function (e) {
    var t = document.createElement("template");
    t.innerHTML = e.data.trim();
    var row = t.content.firstElementChild;
    if (!row) return;
    // Rows from the feed are shared by every session: this page's token.
    var mine = document.querySelector('form.signout input[name="csrf"]');
    var blanks = row.querySelectorAll('input[name="csrf"]');
    for (var k = 0; k < blanks.length; k++) if (mine) blanks[k].value = mine.value;
    var old = document.getElementById(row.id);
    if (old) {
      if (Number(old.getAttribute("data-revision")) >= Number(row.getAttribute("data-revision"))) return;
      old.replaceWith(row);
    } else {
      // Newest first: before the first row with a smaller number.
      var id = Number(row.getAttribute("data-id"));
      var rows = list.querySelectorAll("li.incident");
      var before = null;
      for (var i = 0; i < rows.length; i++) {
        if (Number(rows[i].getAttribute("data-id")) < id) { before = rows[i]; break; }
      }
      list.insertBefore(row, before);
      // A page of rows, as the server sends: older ones are a link away.
      var page = Number(list.getAttribute("data-page")) || 50;
      var all = list.querySelectorAll("li.incident");
      for (var j = page; j < all.length; j++) all[j].remove();
    }
    refreshEmpty();
  });
  // A storm: too many rows to send; say how many and offer a reload.
  var more = document.getElementById("more");
  var moreLink = document.getElementById("more-link");
  var pending = 0;
  es.addEventListener("many", function (e) {
    pending += Number(e.data) || 0;
    if (more && moreLink) {
      moreLink.textContent = pending + " new or changed incidents: show them";
      moreLink.setAttribute("href", location.pathname + location.search);
      more.hidden = false;
    }
  });
  es.addEventListener("remove", function (e) {
    var old = document.getElementById("incident-" + e.data);
    if (old) old.remove();
    refreshEmpty();
  });
})();
