/* The star ratings page: micro-grids' ratings of a quarter from /api/stars, a chief's adjustment
   with its reason, the quarter close, the allowance export, and the service points' inspections.
   Every value enters the page as text. */
(function () {
  "use strict";
  var settings = JSON.parse(document.getElementById("stars-settings").textContent);
  var CRITERIA = ["cases", "visits", "member_points", "events"];
  function $(id) { return document.getElementById(id); }
  function cell(text, cls) {
    var e = document.createElement("td");
    e.textContent = text == null ? "" : String(text);
    if (cls) { e.className = cls; }
    return e;
  }
  function starText(n) {
    var s = "";
    for (var i = 0; i < 5; i++) { s += i < n ? "★" : "☆"; }
    return s;
  }
  function quarter() { return $("stars-quarter").value.trim(); }
  function say(id, text) { $(id).textContent = text; }

  function load() {
    var q = quarter();
    document.documentElement.removeAttribute("data-stars-ready");
    say("stars-msg", "正在加载…");
    var qs = q ? "?quarter=" + encodeURIComponent(q) : "";
    Promise.all([
      window.GridGovApi.request("GET", "/api/stars" + qs),
      window.GridGovApi.request("GET", "/api/stars/service-points" + qs)
    ]).then(function (answers) {
      var r = answers[0], body = $("stars-body"), select = $("adjust-grid");
      body.textContent = "";
      select.textContent = "";
      if (!r.ok) {
        var msg = r.body && r.body.error ? r.body.error.message : "加载失败";
        say("stars-msg", window.GridGovText ? window.GridGovText.message(msg) : msg);
        return;
      }
      var data = r.body;
      data.items.forEach(function (item) {
        var tr = document.createElement("tr");
        tr.dataset.grid = item.code;
        tr.appendChild(cell(item.rank));
        tr.appendChild(cell(item.name + "（" + item.code + "）"));
        CRITERIA.forEach(function (c) { tr.appendChild(cell(item.scores[c])); });
        tr.appendChild(cell(item.score));
        var stars = cell(starText(item.stars), "gg-stars");
        stars.title = item.stars + " 星";
        stars.dataset.stars = String(item.stars);
        tr.appendChild(stars);
        tr.appendChild(cell(item.adjustment ? (item.adjustment > 0 ? "+" : "") + item.adjustment + "：" + (item.adjustment_reason || "") : ""));
        body.appendChild(tr);
        var opt = document.createElement("option");
        opt.value = String(item.grid_id);
        opt.textContent = item.name + "（" + item.code + "）";
        select.appendChild(opt);
      });
      say("stars-msg", data.quarter + (data.closed ? " 已考核关闭（" + data.closed_at + "），星级已固定" : " 未关闭：实时预览") + "，共 " + data.count + " 个微网格");
      $("stars-adjust").hidden = !(settings.may_adjust && !data.closed && data.count > 0);
      $("stars-close").hidden = !(settings.may_close && !data.closed);
      $("stars-export").hidden = !(settings.may_export && data.closed);
      $("export-csv").href = "/api/stars/export?format=csv&quarter=" + encodeURIComponent(data.quarter);
      $("export-xlsx").href = "/api/stars/export?format=xlsx&quarter=" + encodeURIComponent(data.quarter);
      fillServicePoints(answers[1]);
    }).catch(function () { say("stars-msg", "网络错误，请稍后重试"); })
      .then(function () { document.documentElement.setAttribute("data-stars-ready", "1"); });
  }

  function fillServicePoints(r) {
    var body = $("service-body");
    body.textContent = "";
    if (!r.ok) { return; }
    r.body.items.forEach(function (item) {
      var tr = document.createElement("tr"), rating = item.rating;
      tr.appendChild(cell(item.name));
      ["hardware", "organisation", "norms", "effect"].forEach(function (k) {
        tr.appendChild(cell(rating ? rating.scores[k] : "—"));
      });
      tr.appendChild(cell(rating ? rating.total : "未检查"));
      tr.appendChild(cell(rating ? starText(rating.stars) : "", "gg-stars"));
      tr.appendChild(cell(rating ? rating.photos : ""));
      tr.appendChild(cell(rating ? (rating.by || "") + " " + (rating.at || "") : ""));
      body.appendChild(tr);
    });
  }

  function act(method, url, body, done) {
    say("stars-action-msg", "正在提交…");
    window.GridGovApi.call(method, url, body)
      .then(function (answer) { say("stars-action-msg", done(answer)); load(); })
      .catch(function (err) { say("stars-action-msg", window.GridGovApi.text(err)); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("stars-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    $("stars-adjust").addEventListener("submit", function (ev) {
      ev.preventDefault();
      act("POST", "/api/stars/grids/" + encodeURIComponent($("adjust-grid").value) + "/adjust",
        { quarter: quarter(), delta: parseInt($("adjust-delta").value, 10), reason: $("adjust-reason").value },
        function () { return "已记录调整"; });
    });
    $("stars-close").addEventListener("click", function () {
      if (!window.confirm("关闭 " + quarter() + " 季度考核后星级固定，不能再调整。确定关闭？")) { return; }
      act("POST", "/api/stars/close", { quarter: quarter() }, function (a) {
        return a.quarter + " 已关闭，" + a.grids + " 个微网格定级";
      });
    });
    load();
  });
}());
