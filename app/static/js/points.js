/* The points page: the quarter's ranking from /api/points/ranking, put into the table as text. */
(function () {
  "use strict";
  var COLUMNS = {
    member: [["rank", "名次"], ["name", "党员"], ["total", "积分"]],
    household: [["rank", "名次"], ["id", "住户编号"], ["grid_name", "所在网格"], ["total", "积分"]],
    grid: [["rank", "名次"], ["name", "微网格"], ["households", "户数"], ["total", "总积分"], ["average", "户均积分"]]
  };
  function $(id) { return document.getElementById(id); }
  function cell(tag, text) {
    var e = document.createElement(tag);
    e.textContent = text == null ? "" : String(text);
    return e;
  }

  function load() {
    var quarter = $("points-quarter").value.trim(), group = $("points-group").value;
    var url = "/api/points/ranking?limit=200&group=" + encodeURIComponent(group) +
      (quarter ? "&quarter=" + encodeURIComponent(quarter) : "");
    $("points-msg").textContent = "正在加载…";
    document.documentElement.removeAttribute("data-points-ready");
    window.GridGovApi.request("GET", url)
      .then(function (r) {
        var head = $("points-head"), body = $("points-body");
        head.textContent = "";
        body.textContent = "";
        if (!r.ok) {
          var msg = r.body && r.body.error ? r.body.error.message : "加载失败";
          $("points-msg").textContent = window.GridGovText ? window.GridGovText.message(msg) : msg;
          return;
        }
        var cols = COLUMNS[r.body.group];
        cols.forEach(function (c) { head.appendChild(cell("th", c[1])); });
        r.body.items.forEach(function (item) {
          var tr = document.createElement("tr");
          cols.forEach(function (c) { tr.appendChild(cell("td", item[c[0]])); });
          body.appendChild(tr);
        });
        $("points-msg").textContent = r.body.quarter + "（" + r.body.from + " 至 " + r.body.to + "，不含）共 " + r.body.count + " 项";
      })
      .catch(function () { $("points-msg").textContent = "网络错误，请稍后重试"; })
      .then(function () { document.documentElement.setAttribute("data-points-ready", "1"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("points-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    $("points-group").addEventListener("change", load);
    load();
  });
}());
