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
    marker: function (c) {
      return L.circleMarker([c.point.lat, c.point.lon], {
        radius: c.overdue ? 9 : 7, color: "#fff", weight: 2, fillOpacity: 0.95,
        fillColor: c.overdue ? "#d32f2f" : ({ reported: "#6a1b9a", dispatched: "#ef6c00", accepted: "#1565c0",
          resolved: "#00897b", verified: "#2e7d32" }[c.status] || "#757575")
      });
    }
  };
  window.Cases = Cases;
})();
