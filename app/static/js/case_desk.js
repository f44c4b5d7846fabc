/* The centre's case desk: filtered list (overdue first), the cases on a map, and actions. */
(function () {
  "use strict";
  var C = window.Cases, map, markers, current = null, linked = {};

  function query() {
    var f = document.getElementById("filters"), q = new URLSearchParams();
    var status = f.status.value;
    if (status === "all") { /* every state */ } else if (status) { q.set("status", status); } else { q.set("open", "true"); }
    // Filters a link may carry (the overview's click-through): a grid, a period of report.
    ["grid", "from", "to"].forEach(function (k) { if (linked[k]) { q.set(k, linked[k]); } });
    ["category", "source"].forEach(function (k) { if (f[k].value) { q.set(k, f[k].value); } });
    if (f.overdue.checked) { q.set("overdue", "true"); }
    return q;
  }

  function load() {
    var q = query();
    document.getElementById("export-csv").href = "/api/cases/export.csv?" + q;
    document.getElementById("export-xlsx").href = "/api/cases/export.xlsx?" + q;
    return C.call("GET", "/api/cases?limit=500&" + q).then(function (res) {
      var rows = res.items.map(function (c) {
        return '<tr data-id="' + c.id + '" class="' + (c.overdue ? "gg-row-overdue" : "") + '"><td>' + C.esc(c.code) + "</td><td>" +
          C.esc(c.category_name) + "</td><td>" + C.badge(c) + "</td><td>" + C.esc(c.grid ? c.grid.name : "未定位") + "</td><td>" +
          C.esc(c.assignee ? c.assignee.name : (c.department ? c.department.name : "")) + "</td><td>" + C.time(c.deadline) +
          "</td><td>" + C.esc(c.source_name) + "</td><td>" + C.esc(c.reporter_contact) + "</td></tr>";
      });
      document.querySelector("#case-table tbody").innerHTML = rows.join("") || '<tr><td colspan="8">暂无事件</td></tr>';
      document.getElementById("case-count").textContent = "共 " + res.total + " 件";
      markers.clearLayers();
      res.items.forEach(function (c) {
        C.marker(c).bindTooltip(C.esc(c.code + " " + c.category_name + " " + c.status_name)).on("click", function () { show(c.id); }).addTo(markers);
      });
      if (res.items.length) { map.fitBounds(markers.getBounds(), { maxZoom: 17, padding: [20, 20] }); }
    });
  }

  var FORMS = {
    dispatch: '<label>派给网格员 <input type="search" class="gg-worker-filter" placeholder="输入姓名或编号筛选"> ' +
      '<select name="worker_id" class="gg-worker-pick" data-empty="按网格自动派单"></select></label>',
    merge: '<label>合并到事件编号<input name="into" list="gg-dup-codes" autocomplete="off" placeholder="附近的同类事件可直接选择"></label>',
    cancel: '<label>原因<select name="reason"><option value="duplicate">重复上报</option><option value="not_a_problem">不属于问题</option><option value="false_alarm">误报</option><option value="other">其他</option></select></label>',
    transfer: '<label>转派给网格员 <input type="search" class="gg-worker-filter" placeholder="输入姓名或编号筛选"> ' +
      '<select name="worker_id" class="gg-worker-pick" data-empty="相邻网格（自动）"></select></label>'
  };
  var WORKERS = [];

  /* Fill a worker picker with names (text only), narrowed by what the filter box holds. */
  function fillWorkers(select, filter) {
    var words = (filter || "").trim().toLowerCase();
    var keep = select.value;
    while (select.firstChild) { select.removeChild(select.firstChild); }
    var none = document.createElement("option");
    none.value = "";
    none.textContent = select.getAttribute("data-empty");
    select.appendChild(none);
    WORKERS.forEach(function (w) {
      var label = w.name + "（" + (w.code || w.id) + (w.grids ? "，" + w.grids : "") + "）";
      if (words && label.toLowerCase().indexOf(words) < 0) { return; }
      var o = document.createElement("option");
      o.value = String(w.id);
      o.textContent = label;
      select.appendChild(o);
    });
    select.value = keep;
    if (select.value !== keep) { select.value = ""; }
  }
  var NAMES = { dispatch: "派单", cancel: "作废", merge: "合并", escalate: "上报升级", transfer: "转派", verify: "核查通过", reopen: "核查不通过", close: "结案" };

  function show(id) {
    return C.call("GET", "/api/cases/" + id).then(function (c) {
      current = c;
      var acts = c.allowed_actions.filter(function (a) { return NAMES[a]; });
      var ev = c.events.map(function (e) {
        return "<li>" + C.time(e.at) + " " + C.esc(e.action_name) + "（" + C.esc(e.actor_name || e.actor) + "）" + (e.note ? "：" + C.esc(e.note) : "") + "</li>";
      }).join("");
      var photos = c.photos.map(function (p) { return '<img class="gg-thumb" src="' + C.esc(p.url) + '" alt="照片">'; }).join("");
      var html = '<section class="gg-case" data-code="' + C.esc(c.code) + '"><h3>' + C.esc(c.code) + " " + C.badge(c) + "</h3>" +
        "<p>" + C.esc(c.category_name) + " · " + C.esc(c.source_name) + " · 时限 " + C.time(c.deadline) + "</p>" +
        '<p>居民查询码：<span class="gg-public-code">' + C.esc(c.public_code || "") + "</span></p>" +
        "<p>" + C.esc(c.description) + "</p><p>网格：" + C.esc(c.grid ? c.grid.name : "未定位") + "；处置人：" +
        C.esc(c.assignee ? c.assignee.name : (c.department ? c.department.name : "—")) + "（" + C.esc(c.escalation_name) + "）</p>" +
        (c.reporter_contact || c.reporter_name ? '<p>报告人：<span id="reporter">' + C.esc(c.reporter_name || "") + " " +
          C.esc(c.reporter_contact || "") + '</span> <button type="button" id="reveal-reporter" title="完整号码仅在需要联系时查看，查看记入审计日志">查看完整号码</button></p>' : "") +
        photos + '<ol class="gg-events">' + ev + "</ol>" + '<div id="dups"></div>';
      if (acts.length) {
        html += '<form id="act-form"><textarea name="note" placeholder="说明（作废、上报、转派、核查不通过须填写）"></textarea>' +
          acts.map(function (a) { return FORMS[a] || ""; }).join("") +
          acts.map(function (a) { return '<button type="button" data-action="' + a + '">' + NAMES[a] + "</button>"; }).join(" ") +
          "</form>";
      }
      // Also after an action that ends the case (cancel, merge, close): the message has a place.
      html += '<p id="act-msg" class="gg-msg"></p>';
      document.getElementById("case-detail").innerHTML = html + "</section>";
      var reveal = document.getElementById("reveal-reporter");
      if (reveal) {
        reveal.addEventListener("click", function () {
          C.call("POST", "/api/cases/" + c.id + "/reveal", { fields: ["reporter_name", "reporter_contact"] }).then(function (r) {
            document.getElementById("reporter").textContent = (r.reporter_name || "") + " " + (r.reporter_contact || "");
            reveal.remove();
          }).catch(function (err) { document.getElementById("act-msg").textContent = err.message; });
        });
      }
      var form = document.getElementById("act-form");
      if (form) {
        Array.prototype.forEach.call(form.querySelectorAll(".gg-worker-pick"), function (sel) {
          fillWorkers(sel, "");
          var box = sel.parentNode.querySelector(".gg-worker-filter");
          box.addEventListener("input", function () {
            fillWorkers(sel, box.value);
            if (sel.options.length === 2) { sel.selectedIndex = 1; }  // one match: take it
          });
        });
        form.addEventListener("click", function (ev) {
          var a = ev.target.getAttribute("data-action");
          if (a) { act(a, form); }
        });
      }
      if (c.status !== "closed" && c.status !== "cancelled") {
        return C.call("GET", "/api/cases/" + c.id + "/duplicates").then(function (d) {
          if (!d.length) { return; }
          var codes = document.getElementById("gg-dup-codes");
          while (codes.firstChild) { codes.removeChild(codes.firstChild); }
          d.forEach(function (x) {
            var o = document.createElement("option");
            o.value = x.code;
            o.label = x.category_name ? x.category_name + "，" + x.distance_m + " 米" : x.distance_m + " 米";
            codes.appendChild(o);
          });
          document.getElementById("dups").innerHTML = "<p>附近的同类未结事件（可能重复）：" + d.map(function (x) {
            return C.esc(x.code) + "（" + C.esc(x.status_name) + "，" + x.distance_m + " 米）";
          }).join("、") + "</p>";
        });
      }
    });
  }

  function act(action, form) {
    // Who acts is the signed-in account (the server takes it from the session).
    var body = { version: current.version };
    Array.prototype.forEach.call(form.elements, function (el) { if (el.name && el.value) { body[el.name] = el.value; } });
    C.call("POST", "/api/cases/" + current.id + "/actions/" + action, body).then(function () {
      return load().then(function () { return show(current.id); });
    }).then(function () {
      document.getElementById("act-msg").textContent = NAMES[action] + "：已完成";
    }).catch(function (err) { document.getElementById("act-msg").textContent = err.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("desk-workers");
    WORKERS = data ? JSON.parse(data.textContent) : [];
    map = L.map("desk-map", { preferCanvas: true }).setView([31.8, 117.2], 14);
    markers = L.featureGroup().addTo(map);
    window.CaseDeskMap = { map: map, markers: markers };  // the desk's map, for tests and add-ons
    window.CaseDesk = { show: show };  // the search box opens a case here
    C.call("GET", "/api/grids?level=4").then(function (fc) {
      L.geoJSON(fc, { style: { color: "#2e7d32", weight: 1, fillOpacity: 0.03 }, interactive: false }).addTo(map);
    });
    C.call("GET", "/api/case-categories").then(function (cats) {
      var sel = document.querySelector("#filters select[name=category]");
      cats.forEach(function (c) { sel.insertAdjacentHTML("beforeend", '<option value="' + C.esc(c.code) + '">' + C.esc(c.name) + "</option>"); });
    });
    var params = new URLSearchParams(window.location.search), f = document.getElementById("filters");
    ["grid", "from", "to"].forEach(function (k) { if (/^[0-9-]{1,10}$/.test(params.get(k) || "")) { linked[k] = params.get(k); } });
    if (params.get("status")) { f.status.value = params.get("status"); }
    if (params.get("overdue") === "true") { f.overdue.checked = true; }
    document.getElementById("filters").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    document.querySelector("#case-table tbody").addEventListener("click", function (ev) {
      var tr = ev.target.closest("tr[data-id]");
      if (tr) { show(tr.getAttribute("data-id")); }
    });
    var asked = new URLSearchParams(location.search).get("case");  // /cases/desk?case=<id>
    load().then(function () {
      return asked && /^[0-9]+$/.test(asked) ? show(asked).catch(function () {}) : null;
    }).then(function () { document.documentElement.setAttribute("data-desk-ready", "1"); });
  });
})();
