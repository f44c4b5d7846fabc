/* The 一张图 overview: figures of the caller's grids, charts, click-through to the map and the
 * desk; refreshed every minute without reloading the page. */
(function () {
  "use strict";
  var C = window.Cases, charts = {}, REFRESH_MS = 60000;

  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? null : o[k]; }, obj);
  }

  function show(v, format) {
    if (v == null) { return "—"; }
    if (format === "pct") { return (v * 100).toFixed(1) + "%"; }
    return String(v);
  }

  function chinaDate(d) {
    // The China-time calendar date of a moment (UTC+8 all year).
    var t = new Date(d.getTime() + 8 * 3600 * 1000);
    var p = function (n) { return (n < 10 ? "0" : "") + n; };
    return t.getUTCFullYear() + "-" + p(t.getUTCMonth() + 1) + "-" + p(t.getUTCDate());
  }

  /* A moment in China time as YYYY-MM-DD HH:mm, whatever the browser's own time zone. */
  function chinaTime(iso) {
    var d = new Date(iso);
    var t = new Date(d.getTime() + 8 * 3600 * 1000);
    var p = function (n) { return (n < 10 ? "0" : "") + n; };
    return chinaDate(d) + " " + p(t.getUTCHours()) + ":" + p(t.getUTCMinutes());
  }

  function draw(id, config) {
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
      return;
    }
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false } } }, config.options || {});
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function render(o) {
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      el.textContent = show(get(o, el.getAttribute("data-figure")), el.getAttribute("data-format"));
    });
    document.getElementById("ov-grid-levels").textContent = o.grids.by_level.map(function (l) {
      return l.name + " " + l.count;
    }).join("，");
    document.getElementById("ov-link-today").href = "/cases/desk?status=all&from=" + chinaDate(new Date());
    var body = document.querySelector("#ov-worst tbody");
    body.textContent = "";
    o.worst_grids.forEach(function (g) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-grid-id", String(g.id));
      tr.appendChild(cell(g.name));
      tr.appendChild(cell(g.code));
      tr.appendChild(cell(String(g.overdue)));
      var td = document.createElement("td");
      td.appendChild(link("/emap?grid=" + g.id, "地图"));
      td.appendChild(document.createTextNode(" "));
      td.appendChild(link("/cases/desk?overdue=true&grid=" + g.id, "事件"));
      tr.appendChild(td);
      body.appendChild(tr);
    });
    if (!o.worst_grids.length) {
      var tr = document.createElement("tr"), td = cell("暂无超期事件");
      td.colSpan = 4;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    draw("chart-levels", { type: "bar", data: {
      labels: o.grids.by_level.map(function (l) { return l.name; }),
      datasets: [{ label: "网格数", data: o.grids.by_level.map(function (l) { return l.count; }), backgroundColor: "#1565c0" }]
    } });
    draw("chart-trend", { type: "line", data: {
      labels: o.trend.map(function (d) { return d.day.slice(5); }),
      datasets: [{ label: "上报事件", data: o.trend.map(function (d) { return d.reported; }), borderColor: "#b71c1c", backgroundColor: "#b71c1c" }]
    }, options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    draw("chart-worst", { type: "bar", data: {
      labels: o.worst_grids.map(function (g) { return g.name; }),
      datasets: [{ label: "超期事件", data: o.worst_grids.map(function (g) { return g.overdue; }), backgroundColor: "#d32f2f" }]
    }, options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      onClick: function (ev, elements) {
        if (elements.length) { window.location.assign("/emap?grid=" + o.worst_grids[elements[0].index].id); }
      } } });
    document.getElementById("ov-updated").textContent = "数据更新于 " + chinaTime(o.generated_at);
  }

  function load() {
    return C.call("GET", "/api/overview").then(function (o) {
      document.getElementById("ov-msg").textContent = "";
      render(o);
      document.documentElement.setAttribute("data-overview-ready", "1");
      document.documentElement.setAttribute("data-overview-at", o.generated_at);
    }).catch(function (err) {
      document.getElementById("ov-msg").textContent = "数据加载失败：" + err.message;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("ov-refresh").addEventListener("click", load);
    document.getElementById("ov-print").addEventListener("click", function () { window.print(); });
    window.OverviewCharts = charts;
    load();
    window.setInterval(load, REFRESH_MS);
  });
})();
