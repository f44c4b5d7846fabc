/* The field-work part of the KPI page: visits due/done/overdue and on-time shares, the week's
   patrol coverage and days checked in, per worker or grid, with charts and CSV/Excel exports. */
(function () {
  "use strict";
  var C = window.Cases, charts = {};

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    charts[id] = new Chart(document.getElementById(id), config);
  }
  function cell(row, value) {
    var td = document.createElement("td");
    td.textContent = value == null ? "—" : String(value);
    row.appendChild(td);
  }
  function pct(v) { return v == null ? null : Math.round(v * 1000) / 10; }

  function load() {
    var f = document.getElementById("field-kpi-form"), q = new URLSearchParams();
    var view = f.view.value.split(":");
    q.set("group", view[0]);
    if (view[1]) { q.set("level", view[1]); }
    ["csv", "xlsx"].forEach(function (fmt) {
      var e = new URLSearchParams(q);
      e.set("format", fmt);
      document.getElementById("field-kpi-" + fmt).setAttribute("href", "/api/field-kpis?" + e);
    });
    return C.call("GET", "/api/field-kpis?" + q).then(function (res) {
      var g = res.group, body = document.querySelector("#field-kpi-table tbody");
      document.getElementById("field-kpi-period").textContent = "统计时间 " + res.at_local + "；重点人群 " +
        res.month + " 月，全部住户 " + res.quarter + "，巡查与出勤 " + res.week + " 周（已过 " + res.week_days + " 天）";
      body.replaceChildren();
      res.rows.forEach(function (r) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-id", String(r[g].id));
        [r[g].name, r.key.due, r.key.visited, r.key.overdue, C.pct(r.key.on_time_share),
          r.all.due, r.all.visited, r.all.overdue, C.pct(r.all.on_time_share), r.patrol.patrols,
          C.pct(r.patrol.road_share), C.pct(r.patrol.area_share), r.attendance_days].forEach(function (v) { cell(tr, v); });
        body.appendChild(tr);
      });
      if (!res.rows.length) {
        var tr = document.createElement("tr"), td = document.createElement("td");
        td.colSpan = 13;
        td.textContent = "暂无数据";
        tr.appendChild(td);
        body.appendChild(tr);
      }
      var items = res.rows.slice(0, 30), labels = items.map(function (r) { return r[g].name; });
      draw("chart-field-rates", {
        type: "bar",
        data: { labels: labels, datasets: [
          { label: "重点户按时走访率（%）", data: items.map(function (r) { return pct(r.key.on_time_share); }), backgroundColor: "#1565c0" },
          { label: "全部户按时走访率（%）", data: items.map(function (r) { return pct(r.all.on_time_share); }), backgroundColor: "#2e7d32" },
          { label: "道路巡查覆盖率（%）", data: items.map(function (r) { return pct(r.patrol.road_share); }), backgroundColor: "#ef6c00" }
        ] },
        options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { min: 0, max: 100 } } }
      });
      draw("chart-field-visits", {
        type: "bar",
        data: { labels: labels, datasets: [
          { label: "已访", data: items.map(function (r) { return r.all.visited; }), backgroundColor: "#2e7d32", stack: "v" },
          { label: "待访", data: items.map(function (r) { return r.all.due - r.all.visited - r.all.overdue > 0 ? r.all.due - r.all.visited - r.all.overdue : 0; }), backgroundColor: "#90a4ae", stack: "v" },
          { label: "逾期", data: items.map(function (r) { return r.all.overdue; }), backgroundColor: "#c62828", stack: "v" }
        ] },
        options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, min: 0 } } }
      });
    }).catch(function (err) { document.getElementById("field-kpi-period").textContent = err.message; });
  }

  /* One day's attendance per worker: who checked in (first and last time, how often outside
     their grids) and who did not, with the day's CSV/Excel. */
  function loadAttendance() {
    var f = document.getElementById("attendance-form"), day = f.date.value;
    ["csv", "xlsx"].forEach(function (fmt) {
      document.getElementById("attendance-" + fmt).setAttribute("href", "/api/checkins?date=" + encodeURIComponent(day) + "&format=" + fmt);
    });
    return C.call("GET", "/api/checkins?date=" + encodeURIComponent(day)).then(function (res) {
      var body = document.querySelector("#attendance-table tbody");
      document.getElementById("attendance-summary").textContent = res.date + "：出勤 " + res.present + " 人，未打卡 " + res.absent + " 人";
      body.replaceChildren();
      res.workers.forEach(function (w) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-worker", String(w.worker.id));
        [w.worker.code, w.worker.name, w.present ? "是" : "否", w.count, w.first_local, w.last_local, w.outside]
          .forEach(function (v) { cell(tr, v); });
        body.appendChild(tr);
      });
    }).catch(function (err) { document.getElementById("attendance-summary").textContent = err.message; });
  }

  function chinaToday() {
    var now = new Date(Date.now() + 8 * 3600 * 1000);
    return now.toISOString().slice(0, 10);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("field-kpi-form")) { return; }
    var att = document.getElementById("attendance-form");
    att.date.value = chinaToday();
    att.addEventListener("submit", function (ev) { ev.preventDefault(); loadAttendance(); });
    loadAttendance().then(function () { document.documentElement.setAttribute("data-attendance-ready", "1"); });
    document.getElementById("field-kpi-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    load().then(function () { document.documentElement.setAttribute("data-field-kpi-ready", "1"); });
    window.FieldKpiCharts = charts;
  });
})();
