/* The page shell: the phone menu drawer, and the one way every page writes a time
 * (China time, YYYY-MM-DD HH:mm). Loaded on every page after core.js. */
(function () {
  "use strict";
  var OFFSET_MS = 8 * 3600 * 1000; // Asia/Shanghai: UTC+8 all year
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  /* A time as the platform shows it: an ISO string, a Date or milliseconds → "YYYY-MM-DD HH:mm"
   * in China time. A date without a time stays a date; anything else is given back as is. */
  function formatTime(value) {
    if (value === null || value === undefined || value === "") return "";
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value)) return value;
    var d = value instanceof Date ? value : new Date(value);
    if (typeof value === "string" && !/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(value)) return value;
    if (isNaN(d.getTime())) return String(value);
    var c = new Date(d.getTime() + OFFSET_MS);
    return c.getUTCFullYear() + "-" + pad(c.getUTCMonth() + 1) + "-" + pad(c.getUTCDate()) + " " +
      pad(c.getUTCHours()) + ":" + pad(c.getUTCMinutes());
  }
  /* The same for a date only: "YYYY-MM-DD" in China time. */
  function formatDate(value) { return formatTime(value).slice(0, 10); }
  window.GridGovTime = { format: formatTime, date: formatDate };
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("gg-menu-button");
    var scrim = document.getElementById("gg-scrim");
    if (!button) return;
    function show(on) {
      document.body.classList.toggle("gg-menu-shown", on);
      button.setAttribute("aria-expanded", on ? "true" : "false");
      if (scrim) scrim.hidden = !on;
    }
    button.addEventListener("click", function () { show(!document.body.classList.contains("gg-menu-shown")); });
    if (scrim) scrim.addEventListener("click", function () { show(false); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") show(false); });
  });
})();
