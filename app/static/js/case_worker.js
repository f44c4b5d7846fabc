/* A grid worker's phone page: my cases on a map; accept; resolve with note, photo and GPS. */
(function () {
  "use strict";
  var C = window.Cases, map, markers, gps = null, workerId = null, cases = {};

  function actor() { return { role: "worker", worker_id: Number(workerId) }; }

  function card(c) {
    var h = '<article class="gg-card" data-code="' + C.esc(c.code) + '" data-id="' + c.id + '"><h3>' + C.esc(c.category_name) + " " + C.badge(c) + "</h3>" +
      '<p class="gg-muted">' + C.esc(c.code) + " · 时限 " + C.time(c.deadline) + "</p><p>" + C.esc(c.description) + "</p>" +
      (c.address ? "<p>地址：" + C.esc(c.address) + "</p>" : "");
    if (c.status === "dispatched") {
      h += '<button type="button" class="gg-accept" data-action="accept">接单</button> ' +
        '<button type="button" data-action="return">退回</button> <button type="button" data-action="escalate">上报升级</button>' +
        '<textarea name="note" placeholder="退回或上报时说明原因"></textarea>';
    } else if (c.status === "accepted") {
      h += '<form class="gg-resolve"><textarea name="note" placeholder="处置情况（必填）"></textarea>' +
        '<label>现场照片 <input type="file" name="photo" accept="image/*" capture="environment"></label>' +
        '<button type="submit" class="gg-resolve-btn">处置反馈</button> <button type="button" data-action="escalate">上报升级</button></form>';
    } else {
      h += '<p class="gg-muted">已反馈，等待核查</p>';
    }
    return h + '<p class="gg-msg"></p></article>';
  }

  function load() {
    if (!workerId) { document.getElementById("my-cases").innerHTML = "<p>请选择网格员。</p>"; return Promise.resolve(); }
    return C.call("GET", "/api/cases?assignee=" + encodeURIComponent(workerId) + "&status=dispatched,accepted,resolved&limit=200").then(function (res) {
      cases = {};
      res.items.forEach(function (c) { cases[c.id] = c; });
      document.getElementById("my-cases").innerHTML = res.items.map(card).join("") || "<p>暂无待办事件。</p>";
      markers.clearLayers();
      res.items.forEach(function (c) { C.marker(c).bindTooltip(C.esc(c.category_name + " " + c.status_name)).addTo(markers); });
      if (res.items.length) { map.fitBounds(markers.getBounds(), { maxZoom: 17, padding: [20, 20] }); }
    }).catch(function (err) { document.getElementById("my-cases").textContent = err.message; });
  }

  function message(el, text) { el.querySelector(".gg-msg").textContent = text; }

  function send(el, action, form) {
    var c = cases[el.getAttribute("data-id")];
    var fd = new FormData();
    // A worker acts as himself (the server knows him from the session); an administrator
    // opening another worker's page acts for that worker, which the server records as such.
    if (document.getElementById("worker-id").getAttribute("data-on-behalf") === "1") {
      var a = actor();
      fd.append("actor_role", a.role);
      fd.append("actor_worker_id", String(a.worker_id));
    }
    fd.append("version", String(c.version));
    var note = el.querySelector("textarea[name=note]");
    if (note && note.value) { fd.append("note", note.value); }
    var where = gps || c.point;  // without GPS the report-back is placed at the case
    fd.append("lon", String(where.lon));
    fd.append("lat", String(where.lat));
    if (form) {
      var file = form.querySelector("input[type=file]");
      if (file && file.files.length) { fd.append("photo", file.files[0]); }
    }
    return C.call("POST", "/api/cases/" + c.id + "/actions/" + action, fd)
      .then(function () { return load(); })
      .then(function () {
        var again = document.querySelector('.gg-card[data-id="' + c.id + '"]');
        if (again) { message(again, "已提交"); }
        document.getElementById("gps-state").setAttribute("data-last", action);
      })
      .catch(function (err) { message(el, err.message); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    map = L.map("worker-map", { preferCanvas: true }).setView([31.8, 117.2], 14);
    markers = L.featureGroup().addTo(map);
    window.CaseWorkerMap = { map: map, markers: markers };  // the page's map, for tests and add-ons
    var state = document.getElementById("gps-state");
    if (navigator.geolocation) {
      navigator.geolocation.watchPosition(function (pos) {
        gps = { lon: pos.coords.longitude, lat: pos.coords.latitude };
        state.textContent = "已定位：" + gps.lon.toFixed(6) + ", " + gps.lat.toFixed(6);
      }, function () { state.textContent = "未获取定位，反馈时使用事件位置"; }, { enableHighAccuracy: true, maximumAge: 30000 });
    } else { state.textContent = "此设备不支持定位，反馈时使用事件位置"; }
    workerId = document.getElementById("worker-id").value || null;
    document.getElementById("who").addEventListener("submit", function (ev) {
      ev.preventDefault();
      workerId = document.getElementById("worker-id").value || null;
      history.replaceState(null, "", "?worker=" + encodeURIComponent(workerId || ""));
      load();
    });
    var pick = document.getElementById("worker-pick");
    if (pick) {
      pick.addEventListener("change", function () {
        if (!pick.value) { return; }
        document.getElementById("worker-id").value = pick.value;
        document.getElementById("who").requestSubmit();
      });
    }
    var list = document.getElementById("my-cases");
    list.addEventListener("click", function (ev) {
      var action = ev.target.getAttribute("data-action");
      if (!action) { return; }
      send(ev.target.closest(".gg-card"), action, ev.target.closest("form"));
    });
    list.addEventListener("submit", function (ev) {
      ev.preventDefault();
      send(ev.target.closest(".gg-card"), "resolve", ev.target);
    });
    load().then(function () { document.documentElement.setAttribute("data-worker-ready", "1"); });
  });
})();
