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

  var loads = 0;

  function load() {
    var ticket = ++loads;
    var quarter = $("points-quarter").value.trim(), group = $("points-group").value;
    var url = "/api/points/ranking?limit=200&group=" + encodeURIComponent(group) +
      (quarter ? "&quarter=" + encodeURIComponent(quarter) : "");
    $("points-msg").textContent = "正在加载…";
    document.documentElement.removeAttribute("data-points-ready");
    window.GridGovApi.request("GET", url)
      .then(function (r) {
        if (ticket !== loads) { return; }  // a later query has been asked for
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
      .then(function () {
        if (ticket === loads) { document.documentElement.setAttribute("data-points-ready", "1"); }
      });
  }

  var settings = JSON.parse(document.getElementById("points-settings").textContent);

  function fail(id) {
    return function (err) { $(id).textContent = window.GridGovApi.text(err); };
  }

  function loadRules() {
    window.GridGovApi.call("GET", "/api/points/rules?subject=member").then(function (body) {
      var latest = {};
      body.rules.forEach(function (r) { if (r.active) { latest[r.code] = r; } });
      var select = $("propose-rule");
      select.textContent = "";
      Object.keys(latest).sort().forEach(function (code) {
        var r = latest[code], opt = document.createElement("option");
        opt.value = code;
        opt.textContent = r.name + "（" + r.kind + " " + (r.points > 0 ? "+" : "") + r.points + "）";
        select.appendChild(opt);
      });
    }).catch(fail("propose-msg"));
  }

  function propose(ev) {
    ev.preventDefault();
    $("propose-msg").textContent = "正在提交…";
    window.GridGovApi.call("POST", "/api/points/entries", {
      member_id: settings.worker_id, rule_code: $("propose-rule").value,
      occurred_on: $("propose-day").value, note: $("propose-note").value
    }).then(function (body) {
      $("propose-msg").textContent = "已提交：" + body.entry.rule.name + "，" + body.entry.status_zh;
    }).catch(fail("propose-msg"));
  }

  function loadPending() {
    document.documentElement.removeAttribute("data-review-ready");
    window.GridGovApi.call("GET", "/api/points/entries/pending").then(function (body) {
      var tbody = $("review-body");
      tbody.textContent = "";
      body.entries.forEach(function (e) {
        var tr = document.createElement("tr"), td = document.createElement("td");
        tr.dataset.entry = String(e.id);
        [e.member_name, e.rule.name, e.points, e.occurred_on, e.note, e.status_zh].forEach(function (v) {
          tr.appendChild(cell("td", v));
        });
        [["approve", "通过"], ["reject", "驳回"]].forEach(function (d) {
          var b = document.createElement("button");
          b.type = "button";
          b.className = "review-" + d[0];
          b.textContent = d[1];
          b.addEventListener("click", function () { review(e.id, d[0]); });
          td.appendChild(b);
        });
        tr.appendChild(td);
        tbody.appendChild(tr);
      });
      if (!body.entries.length) {
        var none = document.createElement("tr"), td0 = cell("td", "暂无待审核的积分");
        td0.colSpan = 7;
        none.appendChild(td0);
        tbody.appendChild(none);
      }
    }).catch(fail("review-msg")).then(function () {
      document.documentElement.setAttribute("data-review-ready", "1");
    });
  }

  function review(id, decision) {
    var note = decision === "reject" ? window.prompt("请填写驳回理由") : "属实";
    if (decision === "reject" && !note) { return; }
    window.GridGovApi.call("POST", "/api/points/entries/" + id + "/review", { decision: decision, note: note })
      .then(function (body) {
        $("review-msg").textContent = "积分记录 " + id + "：" + body.entry.status_zh;
        loadPending();
        load();
      }).catch(fail("review-msg"));
  }

  function exchange(ev) {
    ev.preventDefault();
    var household = parseInt($("exchange-household").value, 10);
    $("exchange-msg").textContent = "正在兑换…";
    window.GridGovApi.call("POST", "/api/points/households/" + household + "/exchange", {
      points: parseInt($("exchange-points").value, 10), item: $("exchange-item").value
    }).then(function (body) {
      $("exchange-msg").textContent = "已兑换 " + body.exchange.points + " 分，余额 " + body.exchange.balance + " 分";
    }).catch(fail("exchange-msg"));
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("points-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    $("points-group").addEventListener("change", load);
    if (settings.may_propose) {
      $("points-propose").hidden = false;
      $("propose-form").addEventListener("submit", propose);
      loadRules();
    }
    if (settings.may_review) { $("points-review").hidden = false; loadPending(); }
    if (settings.may_exchange) {
      $("points-exchange").hidden = false;
      $("exchange-form").addEventListener("submit", exchange);
    }
    load();
  });
}());
