/* The networks page: departments' grid layers and their mismatch with the unified grid, from
   /api/networks and /api/networks/<id>/mismatch, put into the tables as text. */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  function cell(text) {
    var e = document.createElement("td");
    e.textContent = text == null ? "" : String(text);
    return e;
  }
  function row(values) {
    var tr = document.createElement("tr");
    values.forEach(function (v) { tr.appendChild(cell(v)); });
    return tr;
  }
  function pct(v) { return v == null ? "—" : (Math.round(v * 1000) / 10) + "%"; }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) { return res.json().then(function (body) { return { ok: res.ok, body: body }; }); });
  }
  function fail(body) {
    var msg = body && body.error ? body.error.message : "加载失败";
    $("networks-msg").textContent = window.GridGovText ? window.GridGovText.message(msg) : msg;
  }

  function links(id) {
    var level = $("networks-level").value;
    $("networks-csv").href = "/api/networks/" + id + "/mismatch?format=csv&level=" + level;
    $("networks-xlsx").href = "/api/networks/" + id + "/mismatch?format=xlsx&level=" + level;
  }

  function report() {
    var id = $("networks-select").value;
    if (!id) { $("networks-msg").textContent = "暂无专业网格图层，请先导入。"; return; }
    links(id);
    $("networks-msg").textContent = "正在比对…";
    getJSON("/api/networks/" + encodeURIComponent(id) + "/mismatch?level=" + $("networks-level").value)
      .then(function (r) {
        var body = $("networks-body"), split = $("networks-split-body");
        body.textContent = "";
        split.textContent = "";
        if (!r.ok) { fail(r.body); return; }
        var s = r.body.summary;
        $("networks-msg").textContent = r.body.network.department.name + " · " + r.body.network.name +
          "：" + s.grids + " 个专业网格，完整嵌套 " + s.clean + " 个（" + pct(s.clean_share) + "）";
        var id = r.body.network.id;
        r.body.grids.forEach(function (g) {
          var crossing = g.crossings.filter(function (c) { return !c.sliver; }).map(function (c) {
            return c.grid.name + " " + Math.round(c.area_m2) + "m² " + c.households + "户";
          }).join("；");
          var tr = row([g.code, g.name, g.person || "", Math.round(g.area_m2), crossing,
            g.noise.length ? g.noise.length + " 处" : "", g.nests ? "是" : "否"]);
          var td = document.createElement("td");
          if (!g.nests) {
            var b = document.createElement("button");
            b.type = "button";
            b.className = "networks-propose";
            b.textContent = "对齐建议";
            b.addEventListener("click", function () { propose(id, g.id); });
            td.appendChild(b);
          }
          tr.appendChild(td);
          body.appendChild(tr);
        });
        r.body.unified.filter(function (u) { return u.split; }).forEach(function (u) {
          split.appendChild(row([u.grid.name, Math.round(u.area_m2), u.pieces.map(function (p) {
            return p.network_grid.name + " " + pct(p.share);
          }).join("；")]));
        });
        seq += 1;
        document.documentElement.setAttribute("data-networks-ready", String(seq));
      });
  }

  var pending = null, seq = 0;
  function propose(networkId, gridId) {
    var box = $("networks-proposal"), text = $("networks-proposal-text");
    box.hidden = false;
    text.textContent = "正在计算…";
    pending = null;
    getJSON("/api/networks/" + networkId + "/grids/" + gridId + "/alignment").then(function (r) {
      if (!r.ok) {
        var msg = r.body && r.body.error ? r.body.error.message : "计算失败";
        text.textContent = window.GridGovText ? window.GridGovText.message(msg) : msg;
        return;
      }
      var p = r.body, m = p.moves;
      text.textContent = p.grid.name + "：对齐到 " + p.micro_grids.map(function (u) { return u.name; }).join("、") +
        "；边界最大移动 " + p.max_shift_m + " 米（容差 " + p.tolerance_m + " 米" + (p.within_tolerance ? "以内" : "，超出") +
        "），面积 " + Math.round(p.before.area_m2) + " → " + Math.round(p.after.area_m2) + " m²，增加 " +
        Math.round(m.added_m2) + " m²、减少 " + Math.round(m.removed_m2) + " m²，迁入 " + m.households_in +
        " 户、迁出 " + m.households_out + " 户。";
      $("networks-commit").disabled = !p.within_tolerance;
      pending = { network: networkId, grid: gridId, version: p.grid.version };
    });
  }

  function commitProposal() {
    if (!pending) { return; }
    var p = pending;
    fetch("/api/networks/" + p.network + "/grids/" + p.grid + "/alignment", {
      method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ version: p.version })
    }).then(function (res) { return res.json().then(function (body) { return { ok: res.ok, body: body }; }); })
      .then(function (r) {
        if (!r.ok) {
          var msg = r.body && r.body.error ? r.body.error.message : "提交失败";
          $("networks-proposal-text").textContent = window.GridGovText ? window.GridGovText.message(msg) : msg;
          return;
        }
        $("networks-proposal").hidden = true;
        pending = null;
        report();
      });
  }

  function load() {
    getJSON("/api/networks").then(function (r) {
      if (!r.ok) { fail(r.body); return; }
      var depts = $("networks-depts-body"), select = $("networks-select");
      depts.textContent = "";
      select.textContent = "";
      r.body.departments.forEach(function (d) {
        depts.appendChild(row([d.department.name, d.networks, d.grids, d.clean, pct(d.clean_share)]));
      });
      r.body.networks.forEach(function (n) {
        var o = document.createElement("option");
        o.value = String(n.id);
        o.textContent = n.department.name + " · " + n.name + "（第 " + n.version + " 版）";
        select.appendChild(o);
      });
      report();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("networks-form").addEventListener("submit", function (e) { e.preventDefault(); report(); });
    $("networks-commit").addEventListener("click", commitProposal);
    $("networks-cancel").addEventListener("click", function () { $("networks-proposal").hidden = true; pending = null; });
    load();
  });
})();
