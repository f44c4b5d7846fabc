/* 自动划分网格: choose a grid, ask for a balanced, contiguous division (k parts, about n households
   each, or a range), see it drawn with its quality report, try another k or seed, commit.
   For a micro-grid, 划分片区 cuts patches of 5–10 households with one party member each.
   Everything comes from POST /api/grids/<id>/partition and /patches. */
(function () {
  "use strict";
  var api = window.GridGovApi;
  var PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#800000", "#aaffc3", "#808000",
    "#ffd8b1", "#000075", "#808080"];
  function levelName(level) { return (GridGov.settings.level_names || {})[level] || String(level); }
  var e = function (s) { return GridGov.escape(s); };
  function pct(x) { return (x * 100).toFixed(1) + "%"; }
  function mark(state) { document.documentElement.setAttribute("data-partition", state); }

  function reportHtml(body, patches) {
    var r = body.report;
    var pp = r.polsby_popper;
    var rows = [
      ["方案", r.k + " 块（方案编号 " + r.seed + "）"],
      ["总户数", r.total_households + " 户，" + r.building_points + " 个楼栋/门牌点"],
      ["平均户数", r.mean.toFixed(1) + " 户"],
      ["户数范围", Math.min.apply(null, r.households_per_part) + " – " + Math.max.apply(null, r.households_per_part) + " 户"],
      ["最大偏差", r.max_deviation.toFixed(1) + " 户（" + pct(r.max_deviation_ratio) + "）" +
        (r.within_tolerance ? " ✓ 在 ±" + pct(r.tolerance) + " 内" : " ✗ 超出 ±" + pct(r.tolerance))],
      ["变异系数", pct(r.coefficient_of_variation)],
      ["紧凑度（Polsby-Popper）", "平均 " + r.polsby_popper_mean.toFixed(2) + "，最低 " + Math.min.apply(null, pp).toFixed(2)],
      ["地域相连", r.contiguous ? "是，每块为一个整体" : "否：第 " + r.non_contiguous_parts.map(function (i) { return i + 1; }).join("、") + " 块不相连"],
      ["无缝拼合", r.exact_tiling ? "是（无缝隙、无重叠）" : "否（差 " + r.gap_or_overlap_m2.toFixed(2) + " 平方米）"]
    ];
    if (r.road_boundary_share !== null && r.road_boundary_share !== undefined) {
      rows.push(["沿道路边界", pct(r.road_boundary_share)]);
    }
    if (!r.balance_condition_met) {
      rows.push(["说明", "同一楼栋最多 " + r.largest_building_point + " 户，整栋不拆分，±" + pct(r.tolerance) + " 未必能达到"]);
    }
    var parts = body.features.map(function (f, i) {
      var p = f.properties;
      return "<tr><td><i style=\"background:" + PALETTE[i % PALETTE.length] + "\"></i>" + (i + 1) + "</td><td>" +
        p.households + "</td><td>" + (p.deviation >= 0 ? "+" : "") + p.deviation.toFixed(1) + "</td><td>" +
        p.polsby_popper.toFixed(2) + "</td>" + (patches ? "<td>" + e(p.member_name || "—") + "</td>" : "") + "</tr>";
    }).join("");
    var members = "";
    if (patches && body.households_per_member) {
      members = "<h4>党员联户</h4><ul>" + body.households_per_member.map(function (m) {
        return "<li>" + e(m.member_name) + "：" + m.households + " 户</li>";
      }).join("") + "</ul>";
    }
    return '<section class="gg-part-report"><dl>' +
      rows.map(function (x) { return "<dt>" + x[0] + "</dt><dd>" + x[1] + "</dd>"; }).join("") + "</dl>" +
      '<table class="gg-part-table"><thead><tr><th>编号</th><th>户数</th><th>偏差</th><th>紧凑度</th>' +
      (patches ? "<th>联户党员</th>" : "") + "</tr></thead><tbody>" + parts + "</tbody></table>" + members + "</section>";
  }

  GridGov.onReady(function (map, layers) {
    var state = { on: false, grid: null, proposal: null, patches: false };
    var drawn = L.geoJSON(null, {
      style: function (f) {
        return { color: "#212121", weight: 2, fillColor: PALETTE[f.properties.index % PALETTE.length], fillOpacity: 0.45 };
      },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip((p.index + 1) + "：" + p.households + " 户" + (p.member_name ? "<br>" + e(p.member_name) : ""),
          { permanent: true, direction: "center", className: "gg-part-label" });
      }
    });

    var Control = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-part");
        div.innerHTML =
          '<button type="button" id="gg-part-toggle">自动划分网格</button>' +
          '<div id="gg-part-body" hidden>' +
          '<p id="gg-part-grid" class="gg-part-hint">在地图上点击要划分的网格</p>' +
          '<label>划分方式 <select id="gg-part-mode">' +
          '<option value="k">按份数</option><option value="target_size">按每块户数</option>' +
          '<option value="size_range">按户数范围</option></select></label>' +
          '<div class="gg-part-inputs">' +
          '<label data-mode="k">份数 <input type="number" id="gg-part-k" min="1" max="200" value="3"></label>' +
          '<label data-mode="target_size" hidden>每块约 <input type="number" id="gg-part-target" min="1" value="25"> 户</label>' +
          '<label data-mode="size_range" hidden><input type="number" id="gg-part-low" min="1" value="50"> – ' +
          '<input type="number" id="gg-part-high" min="1" value="80"> 户</label></div>' +
          '<label>方案编号 <input type="number" id="gg-part-seed" min="0" value="0"></label>' +
          '<label class="gg-part-check"><input type="checkbox" id="gg-part-roads" checked> 边界优先沿道路</label>' +
          '<div class="gg-part-buttons"><button type="button" id="gg-part-propose" disabled>生成方案</button>' +
          '<button type="button" id="gg-part-next" disabled>换一个方案</button></div>' +
          '<div id="gg-part-patch" hidden><fieldset class="gg-part-members"><legend>联户党员（每人一片）</legend>' +
          '<div id="gg-part-members"></div></fieldset>' +
          '<button type="button" id="gg-part-patches">划分片区（5–10 户）</button></div>' +
          '<div id="gg-part-result"></div>' +
          '<div id="gg-part-commit-box" hidden><label class="gg-part-check" id="gg-part-replace-label" hidden>' +
          '<input type="checkbox" id="gg-part-replace"> 替换现有下级网格（原网格转为历史）</label>' +
          '<button type="button" id="gg-part-commit">提交划分</button></div>' +
          '<div id="gg-part-status" class="gg-part-status"></div></div>';
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      }
    });
    map.addControl(new Control());
    var $ = function (id) { return document.getElementById(id); };

    function status(text, isError) {
      $("gg-part-status").innerHTML = text ? '<p class="' + (isError ? "gg-error" : "gg-part-ok") + '">' + e(text) + "</p>" : "";
    }
    function clearProposal() {
      drawn.clearLayers();
      state.proposal = null;
      $("gg-part-result").innerHTML = "";
      $("gg-part-commit-box").hidden = true;
    }
    function setOn(on) {
      state.on = on;
      $("gg-part-body").hidden = !on;
      $("gg-part-toggle").classList.toggle("gg-on", on);
      if (on) { drawn.addTo(map); mark("ready"); } else { clearProposal(); map.removeLayer(drawn); }
    }
    $("gg-part-toggle").addEventListener("click", function () { setOn(!state.on); });
    $("gg-part-mode").addEventListener("change", function () {
      var mode = $("gg-part-mode").value;
      Array.prototype.forEach.call(document.querySelectorAll(".gg-part-inputs label"), function (l) {
        l.hidden = l.getAttribute("data-mode") !== mode;
      });
    });

    function select(gridId) {
      return api.call("GET", "/api/grids/" + encodeURIComponent(gridId)).then(function (f) {
        var p = f.properties;
        state.grid = p;
        clearProposal();
        status("");
        var kids = (p.children || []).length;
        $("gg-part-grid").innerHTML = "<b>" + e(p.name) + "</b>（" + e(p.code) + "，" + e(p.level_name) + "，" +
          p.household_count + " 户）" + (kids ? "<br>已有 " + kids + " 个下级网格" : "");
        $("gg-part-replace-label").hidden = !kids;
        $("gg-part-replace").checked = false;
        $("gg-part-propose").disabled = false;
        $("gg-part-next").disabled = false;
        $("gg-part-patch").hidden = p.level !== 4;
        var box = $("gg-part-members");
        box.textContent = "";
        if (p.level !== 4) { mark("selected"); return p; }
        // The party members of the micro-grid and its patches, by name: each ticked one gets a patch.
        return api.request("GET", "/api/ledgers/workers?role=party_member&limit=200&grid=" + encodeURIComponent(p.id))
          .then(function (r) { return r.ok ? r.body : { items: [] }; })
          .then(function (list) {
            (list.items || []).forEach(function (w) {
              var label = document.createElement("label");
              label.className = "gg-part-member";
              var tick = document.createElement("input");
              tick.type = "checkbox";
              tick.value = String(w.id);
              tick.checked = true;
              label.appendChild(tick);
              label.appendChild(document.createTextNode(" " + w.name + (w.code ? "（" + w.code + "）" : "")));
              box.appendChild(label);
            });
            if (!(list.items || []).length) {
              var none = document.createElement("p");
              none.className = "gg-hint";
              none.textContent = "本微网格没有联户党员：请先在账号或导入中指派。";
              box.appendChild(none);
            }
            mark("selected");
            return p;
          });
      });
    }
    /* While the mode is on, a click on a grid chooses it instead of opening its notice board. */
    GridGov.clickHandlers.push(function (feature) {
      if (!state.on) { return true; }
      if (feature.properties.outline) { return false; }
      select(feature.properties.id);
      return false;
    });

    function request() {
      var mode = $("gg-part-mode").value;
      var body = { seed: parseInt($("gg-part-seed").value, 10) || 0, roads: $("gg-part-roads").checked };
      if (mode === "k") { body.k = parseInt($("gg-part-k").value, 10); }
      if (mode === "target_size") { body.target_size = parseFloat($("gg-part-target").value); }
      if (mode === "size_range") { body.size_range = [parseFloat($("gg-part-low").value), parseFloat($("gg-part-high").value)]; }
      return body;
    }
    function show(body, patches) {
      clearProposal();
      state.proposal = body;
      state.patches = patches;
      drawn.addData(body);
      $("gg-part-result").innerHTML = reportHtml(body, patches);
      $("gg-part-commit-box").hidden = false;
      $("gg-part-commit").textContent = patches ? "提交片区划分" : "提交划分";
      map.fitBounds(drawn.getBounds(), { padding: [20, 20] });
    }
    function propose(patches) {
      if (!state.grid) { return Promise.resolve(); }
      mark("busy");
      status("正在计算…");
      var url = "/api/grids/" + state.grid.id + (patches ? "/patches" : "/partition");
      var body = request();
      if (patches) {
        body = { seed: body.seed, roads: body.roads };
        var ids = Array.prototype.map.call(document.querySelectorAll("#gg-part-members input:checked"),
          function (t) { return Number(t.value); });
        if (ids.length) { body.members = ids; }
      }
      state.lastRequest = body;
      return api.call("POST", url, body).then(function (res) {
        show(res, patches);
        status("");
        mark("proposed");
      }).catch(function (err) { status(err.message, true); mark("error"); });
    }
    $("gg-part-propose").addEventListener("click", function () { propose(false); });
    $("gg-part-next").addEventListener("click", function () {
      $("gg-part-seed").value = (parseInt($("gg-part-seed").value, 10) || 0) + 1;
      propose(state.patches);
    });
    $("gg-part-patches").addEventListener("click", function () { propose(true); });

    $("gg-part-commit").addEventListener("click", function () {
      if (!state.proposal || !state.grid) { return; }
      var body = Object.assign({}, state.lastRequest, {
        dry_run: false, base_version: state.proposal.grid.version,
        replace_children: $("gg-part-replace").checked
      });
      var url = "/api/grids/" + state.grid.id + (state.patches ? "/patches" : "/partition");
      mark("busy");
      api.call("POST", url, body).then(function (res) {
        var codes = res.features.map(function (f) { return f.properties.code; });
        var gridId = state.grid.id;
        clearProposal();
        status("已提交：新建 " + codes.length + " 个" + levelName(res.features[0].properties.level) +
          "（" + codes.join("、") + "），迁移住户 " + res.moved.household + " 户");
        return GridGov.refreshMap().then(function () { return select(gridId); }).then(function () {
          status("已提交：新建 " + codes.length + " 个" + levelName(res.features[0].properties.level) +
            "（" + codes.join("、") + "），迁移住户 " + res.moved.household + " 户");
          mark("committed");
        });
      }).catch(function (err) { status(err.message, true); mark("error"); });
    });

    GridGov.partition = { select: select, propose: propose, drawn: drawn, state: state, palette: PALETTE };
  });
})();
