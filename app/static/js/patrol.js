/* The patrol on the field-work phone page: start and stop a patrol, follow the phone's
   position, and send the positions in batches. A batch gets its key when it is formed and
   keeps it in localStorage until the server has it, so a batch sent again (after a lost
   answer, without network, after a reload) is never stored twice. */
(function () {
  "use strict";
  var C = window.Cases, STATE = "gridgov.patrol", BATCH_SIZE = 6, BATCH_MS = 30000;
  var watchId = null, timer = null, sending = false;

  function $(id) { return document.getElementById(id); }

  function load() {
    try { return JSON.parse(localStorage.getItem(STATE) || "null") || { id: null, points: [], batches: [] }; }
    catch (e) { return { id: null, points: [], batches: [] }; }
  }
  function save(s) {
    localStorage.setItem(STATE, JSON.stringify(s));
    var waiting = s.points.length + s.batches.reduce(function (n, b) { return n + b.points.length; }, 0);
    $("patrol-queue").textContent = waiting ? "待发送的位置：" + waiting + " 个" : "";
    $("patrol-queue").setAttribute("data-waiting", String(waiting));
  }
  function key() {
    return "pb-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }

  function showOpen(open) {
    $("patrol-start").hidden = open;
    $("patrol-stop").hidden = !open;
    $("patrol").setAttribute("data-open", open ? "1" : "0");
  }

  /* Cut the points gathered so far into a batch with its own key. */
  function cut(s) {
    if (s.points.length) {
      s.batches.push({ patrol: s.id, key: key(), points: s.points });
      s.points = [];
    }
  }

  function send() {
    if (sending) { return Promise.resolve(); }
    var s = load();
    if (!s.batches.length || !navigator.onLine) { save(s); return Promise.resolve(); }
    sending = true;
    var b = s.batches[0];
    return C.call("POST", "/api/patrols/" + b.patrol + "/positions", { batch_key: b.key, points: b.points })
      .then(function (res) {
        var now = load();
        now.batches = now.batches.filter(function (x) { return x.key !== b.key; });
        now.sent = (now.sent || 0) + res.accepted;
        save(now);
        var msg = "已记录位置 " + now.sent + " 个";
        if (res.dropped_count) { msg += "（本批剔除 " + res.dropped_count + " 个：" + res.dropped.map(function (d) { return d.reason_name; }).join("、") + "）"; }
        $("patrol-msg").textContent = msg;
        $("patrol").setAttribute("data-sent", String(now.sent));
        sending = false;
        return send();
      })
      .catch(function (err) {
        sending = false;
        if (!(err instanceof TypeError)) {
          // Refused for good (the patrol is gone): say so and drop the batch.
          var now = load();
          now.batches = now.batches.filter(function (x) { return x.key !== b.key; });
          save(now);
          $("patrol-msg").textContent = "位置未能保存：" + err.message;
        }
      });
  }

  function take(p) {
    var s = load();
    if (!s.id) { return; }
    s.points.push({
      lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy,
      t: new Date(p.timestamp || Date.now()).toISOString()
    });
    if (s.points.length >= BATCH_SIZE) { cut(s); }
    save(s);
    if (s.batches.length) { send(); }
  }

  function follow() {
    if (!navigator.geolocation || watchId !== null) { return; }
    watchId = navigator.geolocation.watchPosition(take, function (err) {
      $("patrol-msg").textContent = "定位失败：" + err.message;
    }, { enableHighAccuracy: true, maximumAge: 0 });
    timer = setInterval(function () { var s = load(); cut(s); save(s); send(); }, BATCH_MS);
  }
  function unfollow() {
    if (watchId !== null) { navigator.geolocation.clearWatch(watchId); watchId = null; }
    if (timer) { clearInterval(timer); timer = null; }
  }

  function loadCoverage() {
    return C.call("GET", "/api/patrols/coverage?group=worker").then(function (res) {
      var row = res.rows[0], p = $("patrol-coverage");
      if (!row) { p.textContent = "您没有负责巡查的网格"; return; }
      p.textContent = res.week + " 周巡查 " + row.patrols + " 次，道路覆盖率 " + C.pct(row.road_share) +
        "，面积覆盖率 " + C.pct(row.area_share);
      p.setAttribute("data-road-share", String(row.road_share == null ? "" : row.road_share));
      p.setAttribute("data-patrols", String(row.patrols));
    }).catch(function (err) { $("patrol-coverage").textContent = err.message; });
  }

  function start() {
    $("patrol-msg").textContent = "正在开始巡查…";
    return C.call("POST", "/api/patrols", { started_at: new Date().toISOString() }).then(function (res) {
      var s = load();
      s.id = res.patrol.id;
      s.sent = res.patrol.point_count;
      save(s);
      showOpen(true);
      $("patrol-msg").textContent = "巡查中（" + res.patrol.started_at_local + " 开始），位置将分批发送";
      follow();
    }).catch(function (err) { $("patrol-msg").textContent = err.message; });
  }

  function stop() {
    var s = load();
    if (!s.id) { showOpen(false); return Promise.resolve(); }
    unfollow();
    cut(s);
    save(s);
    var id = s.id;
    return send().then(function () {
      if (load().batches.length) {
        $("patrol-msg").textContent = "位置尚未全部发送，联网后自动发送，再结束巡查";
        return;
      }
      return C.call("POST", "/api/patrols/" + id + "/stop", {}).then(function (res) {
        var now = load();
        now.id = null;
        save(now);
        showOpen(false);
        var m = res.patrol.length_m == null ? 0 : Math.round(res.patrol.length_m);
        $("patrol-msg").textContent = "巡查已结束：" + res.patrol.point_count + " 个位置，约 " + m + " 米";
        return loadCoverage();
      });
    }).catch(function (err) { $("patrol-msg").textContent = err.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!$("patrol")) { return; }
    $("patrol-start").addEventListener("click", start);
    $("patrol-stop").addEventListener("click", stop);
    window.addEventListener("online", send);
    var s = load();
    save(s);
    showOpen(!!s.id);
    if (s.id) { follow(); send(); }
    loadCoverage().then(function () { document.documentElement.setAttribute("data-patrol-ready", "1"); });
  });
  window.GridGovPatrol = { send: send, coverage: loadCoverage, state: load };
})();
