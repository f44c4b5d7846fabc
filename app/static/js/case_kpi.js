/* KPI page: closure rate, on-time closure rate, handling time and satisfaction, with charts. */
(function () {
  "use strict";
  var C = window.Cases, charts = {};

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function load() {
    var f = document.getElementById("kpi-form"), q = new URLSearchParams();
    var view = f.view.value.split(":");
    q.set("group", view[0]);
    if (view[1]) { q.set("level", view[1]); }
    if (f.from.value) { q.set("from", f.from.value); }
    if (f.to.value) { q.set("to", f.to.value); }
    return C.call("GET", "/api/cases/kpis?" + q).then(function (res) {
      var items = res.items.slice(0, 30);
      document.querySelector("#kpi-table tbody").innerHTML = res.items.map(function (i) {
        return "<tr><td>" + C.esc(i.name) + "</td><td>" + i.total + "</td><td>" + i.closed + "</td><td>" + C.pct(i.closure_rate) +
          "</td><td>" + C.pct(i.on_time_closure_rate) + "</td><td>" + (i.avg_handling_hours == null ? "—" : i.avg_handling_hours) +
          "</td><td>" + (i.satisfaction == null ? "—" : i.satisfaction) + "</td><td>" + C.pct(i.satisfied_rate) + "</td><td>" + C.pct(i.solved_rate) + "</td><td>" + i.overdue + "</td></tr>";
      }).join("") || '<tr><td colspan="10">暂无数据</td></tr>';
      var labels = items.map(function (i) { return i.name; });
      var pct = function (v) { return v == null ? null : Math.round(v * 1000) / 10; };
      draw("chart-rates", {
        type: "bar",
        data: { labels: labels, datasets: [
          { label: "结案率（%）", data: items.map(function (i) { return pct(i.closure_rate); }), backgroundColor: "#1565c0" },
          { label: "按期结案率（%）", data: items.map(function (i) { return pct(i.on_time_closure_rate); }), backgroundColor: "#2e7d32" },
          { label: "问题解决率（%）", data: items.map(function (i) { return pct(i.solved_rate); }), backgroundColor: "#00897b" }
        ] },
        options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { min: 0, max: 100 } } }
      });
      draw("chart-satisfaction", {
        type: "bar",
        data: { labels: labels, datasets: [
          { label: "满意度（1–5）", data: items.map(function (i) { return i.satisfaction; }), backgroundColor: "#ef6c00", yAxisID: "y" },
          { label: "平均处置时长（小时）", data: items.map(function (i) { return i.avg_handling_hours; }), backgroundColor: "#6a1b9a", yAxisID: "y1" }
        ] },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
          scales: { y: { min: 0, max: 5, position: "left" }, y1: { min: 0, position: "right", grid: { drawOnChartArea: false } } } }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("kpi-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    load().then(function () { document.documentElement.setAttribute("data-kpi-ready", "1"); });
    window.CaseKpiCharts = charts;  // the drawn charts, for tests and add-ons
  });
})();
