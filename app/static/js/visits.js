/* The field-work phone page: check in, the households due this period, a visit recorded with
   the phone's position (kept and flagged when too far), a case reported from a visit, and a
   queue in the page for visits made without network (sent later with the same key). */
(function () {
  "use strict";
  var C = window.Cases, QUEUE = "gridgov.visitQueue", categories = [];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text != null) { e.textContent = text; }
    return e;
  }
  function $(id) { return document.getElementById(id); }

  function position() {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("此设备无法定位")); return; }
      navigator.geolocation.getCurrentPosition(function (p) {
        resolve({ lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy });
      }, function (err) { reject(new Error("定位失败：" + err.message)); },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 });
    });
  }

  function key() {
    return "v-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }

  /* ---- offline queue */
  function queued() {
    try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; }
  }
  function saveQueue(items) {
    localStorage.setItem(QUEUE, JSON.stringify(items));
    $("queue-state").textContent = items.length ? "待发送的走访：" + items.length + " 条（联网后自动发送）" : "";
  }
  function isNetworkError(err) { return err instanceof TypeError; }

  function flush() {
    var items = queued();
    if (!items.length || !navigator.onLine) { saveQueue(items); return Promise.resolve(); }
    var rest = [];
    return items.reduce(function (p, body) {
      return p.then(function () {
        return C.call("POST", "/api/visits", body).catch(function (err) {
          if (isNetworkError(err)) { rest.push(body); } else { $("visit-msg").textContent = "离线走访未能保存：" + err.message; }
        });
      });
    }, Promise.resolve()).then(function () {
      saveQueue(rest);
      if (!rest.length && items.length) { $("visit-msg").textContent = "离线记录的走访已全部发送"; }
      return refresh();
    });
  }

  /* ---- check-in */
  function checkIn() {
    var msg = $("checkin-msg");
    msg.textContent = "正在定位…";
    msg.classList.remove("gg-flag");
    return position().then(function (pos) {
      return C.call("POST", "/api/checkins", {
        lon: pos.lon, lat: pos.lat, accuracy: pos.accuracy, checked_at: new Date().toISOString(), idempotency_key: key()
      });
    }).then(function (res) {
      var ck = res.checkin;
      msg.textContent = ck.checked_at_local + " " + ck.message;
      msg.setAttribute("data-inside", ck.inside ? "1" : "0");
      if (!ck.inside) { msg.classList.add("gg-flag"); }
    }).catch(function (err) { msg.textContent = err.message; });
  }

  /* ---- due list */
  function choose(item) {
    $("visit-household-id").value = String(item.household.id);
    $("visit-household").textContent = (item.household.address || ("住户 " + item.household.id)) +
      (item.household.head_name ? "（" + item.household.head_name + "）" : "");
    $("visit-kind").value = item.kind;
    $("visit-msg").textContent = "";
    $("visit-flag").hidden = true;
    $("visit").scrollIntoView();
  }

  function dueItem(item) {
    var row = el("div", "gg-due-item" + (item.overdue ? " gg-overdue-item" : ""));
    row.setAttribute("data-household", String(item.household.id));
    row.appendChild(el("strong", null, item.household.address || ("住户 " + item.household.id)));
    var info = [item.kind_name, item.grid.name];
    if (item.household.key_tags.length) { info.push(item.household.key_tags.join("、")); }
    info.push(item.last_visit_local ? "上次走访 " + item.last_visit_local : "尚未走访");
    if (item.overdue) { info.push("已超期"); }
    row.appendChild(el("p", "gg-muted", info.join(" · ")));
    var btn = el("button", "gg-visit-btn", "走访");
    btn.type = "button";
    btn.addEventListener("click", function () { choose(item); });
    row.appendChild(btn);
    return row;
  }

  function loadDue() {
    return C.call("GET", "/api/visits/due?limit=200").then(function (res) {
      $("due-summary").textContent = res.month + " 月度 / " + res.quarter + " 季度：待走访 " + res.count +
        " 户，其中超期 " + res.overdue + " 户";
      var list = $("due-list");
      list.replaceChildren();
      res.items.forEach(function (item) { list.appendChild(dueItem(item)); });
    }).catch(function (err) { $("due-summary").textContent = err.message; });
  }

  /* ---- recent visits, with "report a case" */
  function reportFrom(visit, row) {
    var msg = row.querySelector(".gg-msg");
    var category = $("visit-category").value;
    return C.call("POST", "/api/visits/" + visit.id + "/case", { category: category }).then(function (res) {
      msg.textContent = "已上报事件 " + res.case.code;
      row.querySelector("button").remove();
    }).catch(function (err) { msg.textContent = err.message; });
  }

  function visitItem(v) {
    var row = el("div", "gg-visit-item");
    row.setAttribute("data-visit", String(v.id));
    row.appendChild(el("strong", null, v.visited_at_local + " " + v.kind_name + " " + (v.household.address || "")));
    if (v.place_flag) { row.appendChild(el("p", "gg-flag", v.place_message)); }
    if (v.problems) { row.appendChild(el("p", null, "发现问题：" + v.problems)); }
    if (v.case) {
      row.appendChild(el("p", "gg-muted", "已上报事件 " + (v.case.code || v.case.id)));
    } else {
      var btn = el("button", "gg-report-btn", "上报事件");
      btn.type = "button";
      btn.addEventListener("click", function () { reportFrom(v, row); });
      row.appendChild(btn);
    }
    row.appendChild(el("p", "gg-msg"));
    return row;
  }

  function loadRecent() {
    return C.call("GET", "/api/visits?limit=20").then(function (res) {
      var list = $("recent-list");
      list.replaceChildren();
      if (!res.visits.length) { list.appendChild(el("p", "gg-muted", "暂无走访记录")); }
      res.visits.forEach(function (v) { list.appendChild(visitItem(v)); });
    }).catch(function (err) { $("recent-list").textContent = err.message; });
  }

  function figures(label, f) {
    return label + "：应访 " + f.due + " 户，已访 " + f.visited + " 户，超期 " + f.overdue + " 户，按时率 " + C.pct(f.on_time_share);
  }

  function loadCoverage() {
    return C.call("GET", "/api/visits/coverage?group=worker").then(function (res) {
      var row = res.rows[0];
      if (!row) { $("coverage-key").textContent = "您没有负责走访的网格"; $("coverage-all").textContent = ""; return; }
      var key = $("coverage-key"), all = $("coverage-all");
      key.textContent = figures(res.month + " 重点人群月走访", row.key);
      all.textContent = figures(res.quarter + " 全部住户季遍访", row.all);
      all.setAttribute("data-visited", String(row.all.visited));
    }).catch(function (err) { $("coverage-key").textContent = err.message; });
  }

  function refresh() { return Promise.all([loadDue(), loadRecent(), loadCoverage()]); }

  /* ---- the visit form */
  function showResult(res) {
    var v = res.visit;
    var text = "已保存走访（" + v.visited_at_local + "，距住户 " + Math.round(v.distance_m) + " 米）";
    if (res.case) { text += "，已上报事件 " + res.case.code; }
    $("visit-msg").textContent = text;
    var flag = $("visit-flag");
    flag.hidden = !v.place_flag;
    flag.textContent = v.place_flag ? "位置异常：" + v.place_message + "，记录已标记待核查" : "";
  }

  function submit(ev) {
    ev.preventDefault();
    var hid = Number($("visit-household-id").value);
    if (!hid) { $("visit-msg").textContent = "请先从待走访名单中选择住户"; return; }
    $("visit-msg").textContent = "正在定位…";
    $("visit-flag").hidden = true;
    position().then(function (pos) {
      var body = {
        household_id: hid, kind: $("visit-kind").value, lon: pos.lon, lat: pos.lat, accuracy: pos.accuracy,
        visited_at: new Date().toISOString(), note: $("visit-note").value, problems: $("visit-problems").value,
        idempotency_key: key()
      };
      if ($("visit-report").checked) {
        body.case = { category: $("visit-category").value, description: $("visit-problems").value };
      }
      if (!navigator.onLine) { throw Object.assign(new TypeError("offline"), { body: body }); }
      return C.call("POST", "/api/visits", body).catch(function (err) {
        if (isNetworkError(err)) { err.body = body; }
        throw err;
      });
    }).then(function (res) {
      showResult(res);
      $("visit-note").value = "";
      $("visit-problems").value = "";
      $("visit-report").checked = false;
      return refresh();
    }).catch(function (err) {
      if (isNetworkError(err) && err.body) {
        var items = queued();
        items.push(err.body);
        saveQueue(items);
        $("visit-msg").textContent = "当前无网络，走访已暂存在本机，联网后自动发送";
        return;
      }
      $("visit-msg").textContent = err.message;
    });
  }

  function loadCategories() {
    return C.call("GET", "/api/case-categories").then(function (res) {
      categories = Array.isArray(res) ? res : (res.items || res.categories || []);
      var select = $("visit-category");
      select.replaceChildren();
      categories.forEach(function (c) {
        var o = el("option", null, c.name);
        o.value = c.code;
        select.appendChild(o);
      });
    }).catch(function () { /* the case form says so when used */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("checkin-btn").addEventListener("click", checkIn);
    $("visit-form").addEventListener("submit", submit);
    window.addEventListener("online", flush);
    saveQueue(queued());
    Promise.all([loadCategories(), refresh()]).then(flush).then(function () {
      document.documentElement.setAttribute("data-visits-ready", "1");
    });
  });
  window.GridGovVisits = { flush: flush, refresh: refresh, queued: queued };
})();
