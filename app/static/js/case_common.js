/* Helpers shared by the case pages: escaping, API calls (core.js), time formatting. */
(function () {
  "use strict";
  var Cases = {
    esc: function (s) {
      return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
        return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
      });
    },
    /* Call the API; resolve with the JSON body, reject with the error message it gave (what a
     * person reads of it) or, when the connection failed, the browser's TypeError. */
    call: function (method, url, body) {
      return window.GridGovApi.call(method, url, body).catch(function (e) {
        throw e instanceof TypeError ? e : new Error(window.GridGovApi.text(e));
      });
    },
    /* China time, YYYY-MM-DD HH:mm (the shell's one helper). */
    time: function (iso) { return window.GridGovTime.format(iso); },
    badge: function (c) {
      return '<span class="gg-status gg-status-' + Cases.esc(c.status) + '">' + Cases.esc(c.status_name) + "</span>" +
        (c.overdue ? '<span class="gg-overdue">超期</span>' : "");
    },
    pct: function (v) { return v == null ? "—" : (v * 100).toFixed(1) + "%"; },
    /* States and sources as the server defines them (the page's #gg-case-vocabulary block:
     * statuses [{code, name, hint}], status_colors, overdue_color, sources). */
    vocabulary: function () {
      if (!vocabulary) {
        var block = document.getElementById("gg-case-vocabulary");
        vocabulary = block ? JSON.parse(block.textContent) : { statuses: [], status_colors: {}, sources: {} };
      }
      return vocabulary;
    },
    /* The colour a case is drawn in: red when overdue, else its state's. */
    color: function (c) {
      var v = Cases.vocabulary();
      return c.overdue ? v.overdue_color : (v.status_colors[c.status] || "#757575");
    },
    marker: function (c) {
      return L.circleMarker([c.point.lat, c.point.lon], {
        radius: c.overdue ? 9 : 7, color: "#fff", weight: 2, fillOpacity: 0.95, fillColor: Cases.color(c)
      });
    }
  };
  var vocabulary = null;

  /* The state badges (.gg-status-<state>) take their colours from the same definition. */
  function statusStyles() {
    var colors = Cases.vocabulary().status_colors || {};
    var style = document.createElement("style");
    style.textContent = Object.keys(colors).map(function (code) {
      return ".gg-status-" + code.replace(/[^a-z_]/g, "") + " { background: " + colors[code] + "; }";
    }).join("\n");
    document.head.appendChild(style);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", statusStyles);
  } else {
    statusStyles();
  }
  window.Cases = Cases;
})();
