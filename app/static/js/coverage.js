/* 服务圈覆盖分析: the e-map's coverage view.
   Grids coloured by the share of households inside a service circle (with a legend), the
   uncovered households as bare points with counts (no personal data), the uncovered area, the
   circles true to their radius on the ground, and recommended new sites that can be accepted
   as planned service points. All figures come from /api/coverage. */
(function () {
  "use strict";
  var api = window.GridGovApi;
  var e = function (s) { return GridGov.escape(s); };
  var CLASSES = [
    { min: 0.95, color: "#1a9850", label: "≥ 95%" },
    { min: 0.85, color: "#91cf60", label: "85% – 95%" },
    { min: 0.70, color: "#fee08b", label: "70% – 85%" },
    { min: 0.50, color: "#fc8d59", label: "50% – 70%" },
    { min: -1, color: "#d73027", label: "< 50%" }
  ];
  var NO_HOUSEHOLDS = "#bdbdbd";
  /* The levels coverage is counted at (below the street), named by the server's table. */
  var LEVELS = [2, 3, 4, 5];

  function shareColor(share) {
    if (share === null || share === undefined) { return NO_HOUSEHOLDS; }
    for (var i = 0; i < CLASSES.length; i++) { if (share >= CLASSES[i].min) { return CLASSES[i].color; } }
    return CLASSES[CLASSES.length - 1].color;
  }
  function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%"; }
  function metres(x) { return x === null || x === undefined ? "—" : Math.round(x) + " 米"; }
  function num(x) { return x === null || x === undefined ? "—" : Number(x).toLocaleString("zh-CN"); }

  function figuresHtml(p, title) {
    var rows = [
      ["住户", num(p.households) + " 户"],
      ["已覆盖", num(p.households_covered) + " 户（" + pct(p.households_covered_share) + "）"],
      ["未覆盖", num(p.households_uncovered) + " 户"],
      ["人口", num(p.people) + " 人"],
      ["已覆盖人口", num(p.people_covered) + " 人（" + pct(p.people_covered_share) + "）"],
      ["未覆盖人口", num(p.people_uncovered) + " 人"],
      ["面积覆盖率", pct(p.area_covered_share)],
      ["最近服务点距离", "中位 " + metres(p.nearest_median_m) + "，最远 " + metres(p.nearest_max_m)]
    ];
    return '<section class="gg-cov-figures">' + (title ? "<h2>" + title + "</h2>" : "") + "<dl>" +
      rows.map(function (r) { return "<dt>" + r[0] + "</dt><dd>" + r[1] + "</dd>"; }).join("") + "</dl></section>";
  }

  GridGov.onReady(function (map, baseLayers) {
    var state = { on: false, loads: 0, presets: { one_km_m: 1000, five_minute_m: 400 }, data: null, recs: null };
    var groups = {
      grids: L.geoJSON(null, {
        style: function (f) {
          var hasHouseholds = f.properties.households > 0;
          return { color: "#37474f", weight: 1, fillOpacity: 0.55,
                   fillColor: hasHouseholds ? shareColor(f.properties.households_covered_share) : NO_HOUSEHOLDS };
        },
        onEachFeature: function (f, layer) {
          layer.on("click", function (ev) {
            L.DomEvent.stopPropagation(ev);
            GridGov.panel(figuresHtml(f.properties, e(f.properties.name) + " · 服务圈覆盖"));
          });
        }
      }),
      area: L.geoJSON(null, { interactive: false, style: function () {
        return { color: "#424242", weight: 1, dashArray: "3 3", fillColor: "#424242", fillOpacity: 0.25 };
      } }),
      circles: L.geoJSON(null, { interactive: false, style: function (f) {
        var planned = f.properties.status === "planned";
        return { color: planned ? "#6a1b9a" : "#c62828", weight: 1.5, dashArray: planned ? "6 4" : null, fillOpacity: 0 };
      } }),
      households: L.layerGroup(),
      sites: L.layerGroup()
    };
    var names = {
      grids: "覆盖率（按网格）", area: "未覆盖区域", circles: "服务圈（覆盖分析）",
      households: "未覆盖住户", sites: "推荐新站点"
    };

    var legend = L.control({ position: "bottomleft" });
    legend.onAdd = function () {
      var div = L.DomUtil.create("div", "gg-cov-legend");
      div.innerHTML = "<h4>住户覆盖率</h4>" + CLASSES.map(function (c) {
        return '<div><i style="background:' + c.color + '"></i>' + c.label + "</div>";
      }).join("") + '<div><i style="background:' + NO_HOUSEHOLDS + '"></i>无住户</div>' +
        '<div><i class="gg-cov-dot"></i>未覆盖住户（点的大小表示户数）</div>' +
        '<div><i class="gg-cov-hatch"></i>未覆盖区域</div>';
      return div;
    };

    var Control = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-cov");
        div.innerHTML =
          '<button type="button" id="gg-cov-toggle">服务圈覆盖分析</button>' +
          '<div id="gg-cov-body" hidden>' +
          '<label>服务半径 <select id="gg-cov-radius">' +
          '<option value="">按各服务点的服务半径</option>' +
          '<option value="one_km_m">一公里服务圈</option>' +
          '<option value="five_minute_m">五分钟服务圈</option></select></label>' +
          '<label>统计层级 <select id="gg-cov-level">' +
          LEVELS.map(function (l) {
            return '<option value="' + l + '"' + (l === 3 ? " selected" : "") + ">" + e(GridGov.settings.level_names[l]) + "</option>";
          }).join("") + "</select></label>" +
          '<label class="gg-cov-check"><input type="checkbox" id="gg-cov-planned"> 含规划服务点</label>' +
          '<div id="gg-cov-summary" class="gg-cov-summary">正在计算…</div>' +
          '<div class="gg-cov-rec-form"><label>新增站点数 <input type="number" id="gg-cov-k" min="1" max="10" value="3"></label>' +
          '<button type="button" id="gg-cov-recommend">推荐新站点</button></div>' +
          '<div id="gg-cov-recs"></div></div>';
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      }
    });
    map.addControl(new Control());
    var $ = function (id) { return document.getElementById(id); };

    function radiusValue() {
      var v = $("gg-cov-radius").value;
      return v ? state.presets[v] : null;
    }
    function query() {
      var q = "include_planned=" + ($("gg-cov-planned").checked ? "1" : "0");
      var r = radiusValue();
      return r ? q + "&radius_m=" + r : q;
    }
    function optionLabels() {
      var sel = $("gg-cov-radius");
      sel.options[1].text = "一公里服务圈（" + state.presets.one_km_m + " 米）";
      sel.options[2].text = "五分钟服务圈（" + state.presets.five_minute_m + " 米）";
    }

    function drawHouseholds(features) {
      groups.households.clearLayers();
      features.forEach(function (f) {
        var p = f.properties, c = f.geometry.coordinates;
        L.circleMarker([c[1], c[0]], {
          radius: Math.min(3 + Math.sqrt(p.households) * 1.5, 14), color: "#b71c1c", weight: 1,
          fillColor: "#ff5252", fillOpacity: 0.85
        }).bindTooltip("未覆盖住户 " + num(p.households) + " 户 / " + num(p.people) + " 人").addTo(groups.households);
      });
    }

    function summaryHtml(d) {
      var t = d.totals;
      var radius = d.radius_m ? d.radius_m + " 米" : "各服务点自身半径";
      return "<div>服务点 " + d.service_points + " 个（" + e(radius) + "）</div>" +
        "<div>住户覆盖 <b>" + num(t.households_covered) + "</b> / " + num(t.households) + " 户（<b>" + pct(t.households_covered_share) + "</b>）</div>" +
        "<div>人口覆盖 " + num(t.people_covered) + " / " + num(t.people) + " 人（" + pct(t.people_covered_share) + "）</div>" +
        "<div>面积覆盖率 " + pct(t.area_covered_share) + "</div>" +
        "<div>到最近服务点：中位 " + metres(t.nearest_median_m) + "，最远 " + metres(t.nearest_max_m) + "</div>";
    }

    function load() {
      var level = $("gg-cov-level").value;
      document.documentElement.setAttribute("data-coverage", "loading");
      $("gg-cov-summary").textContent = "正在计算…";
      return Promise.all([
        api.call("GET", "/api/coverage?format=geojson&level=" + level + "&" + query()),
        api.call("GET", "/api/coverage/uncovered?" + query()),
        api.call("GET", "/api/coverage/circles?" + query())
      ]).then(function (res) {
        state.data = res[0];
        groups.grids.clearLayers().addData(res[0].grids);
        groups.area.clearLayers().addData({ type: "FeatureCollection", features: res[1].features.filter(function (f) { return f.properties.layer === "area"; }) });
        drawHouseholds(res[1].features.filter(function (f) { return f.properties.layer === "households"; }));
        groups.circles.clearLayers().addData(res[2]);
        $("gg-cov-summary").innerHTML = summaryHtml(res[0]);
        state.loads += 1;
        document.documentElement.setAttribute("data-coverage", "ready");
        document.documentElement.setAttribute("data-coverage-loads", String(state.loads));
      }).catch(function (err) {
        $("gg-cov-summary").innerHTML = '<span class="gg-error">计算失败：' + e(err.message) + "</span>";
        document.documentElement.setAttribute("data-coverage", "error");
      });
    }

    function qualityText(r) {
      if (r.optimal) { return r.method === "exact" ? "精确求解，已证明为最优方案" : "贪心求解，已达到上界，即最优方案"; }
      return "贪心求解：理论上不低于最优方案的 " + pct(r.guarantee) + "（1 − (1 − 1/k)^k）；" +
        "本次不低于最优的 " + pct(r.upper_bound > 0 ? r.total_gain / r.upper_bound : 1);
    }

    function recommend() {
      var k = parseInt($("gg-cov-k").value, 10) || 1;
      var body = { k: k, include_planned: $("gg-cov-planned").checked };
      var r = radiusValue();
      if (r) { body.radius_m = r; }
      $("gg-cov-recs").textContent = "正在计算推荐站点…";
      document.documentElement.setAttribute("data-coverage-recs", "loading");
      return api.call("POST", "/api/coverage/recommend", body).then(function (res) {
        state.recs = res;
        groups.sites.clearLayers();
        res.sites.forEach(function (s) {
          L.geoJSON(s.circle, { interactive: false, style: { color: "#1565c0", weight: 2, dashArray: "8 4", fillColor: "#1565c0", fillOpacity: 0.06 } }).addTo(groups.sites);
          s.households.forEach(function (h) {
            L.circleMarker([h[1], h[0]], { radius: 3, color: "#0d47a1", weight: 1, fillColor: "#64b5f6", fillOpacity: 0.9 })
              .bindTooltip("推荐站点 " + s.rank + " 将新覆盖此处 " + h[2] + " 户").addTo(groups.sites);
          });
          L.marker([s.lat, s.lon], {
            icon: L.divIcon({ className: "gg-cov-site", html: "<span>荐" + s.rank + "</span>", iconSize: [30, 30], iconAnchor: [15, 15] })
          }).bindTooltip("推荐站点 " + s.rank + "：新增覆盖 " + num(s.gain_households) + " 户 / " + num(s.gain_people) + " 人")
            .addTo(groups.sites);
        });
        var list = res.sites.map(function (s, i) {
          return '<li data-rank="' + s.rank + '">推荐站点 ' + s.rank + "：新增覆盖 <b>" + num(s.gain_households) + "</b> 户 / " +
            num(s.gain_people) + " 人" + (s.grid ? "（" + e(s.grid.name) + "）" : "") +
            ' <button type="button" class="gg-cov-accept" data-i="' + i + '">采纳为规划服务点</button></li>';
        }).join("");
        $("gg-cov-recs").innerHTML =
          "<p>共新增覆盖 <b>" + num(res.gain_households) + "</b> 户，覆盖户数由 " + num(res.households_covered_before) +
          " 增至 " + num(res.households_covered_after) + "（共 " + num(res.households) + " 户）。</p>" +
          (list ? "<ol>" + list + "</ol>" : "<p>没有能新增覆盖的候选位置。</p>") +
          '<p class="gg-cov-quality">' + e(qualityText(res)) + "；候选位置 " + res.candidates + " 个。</p>";
        Array.prototype.forEach.call(document.querySelectorAll(".gg-cov-accept"), function (b) {
          b.addEventListener("click", function () { accept(res.sites[parseInt(b.getAttribute("data-i"), 10)], b); });
        });
        document.documentElement.setAttribute("data-coverage-recs", "ready");
      }).catch(function (err) {
        $("gg-cov-recs").innerHTML = '<span class="gg-error">推荐失败：' + e(err.message) + "</span>";
        document.documentElement.setAttribute("data-coverage-recs", "error");
      });
    }

    function accept(site, button) {
      button.disabled = true;
      return api.call("POST", "/api/coverage/accept", { lon: site.lon, lat: site.lat, radius_m: site.radius_m }).then(function (f) {
        button.replaceWith(Object.assign(document.createElement("span"), {
          className: "gg-cov-accepted", textContent: "已采纳：" + f.properties.name
        }));
        if (GridGov.refreshCircles) { GridGov.refreshCircles(); }  // the new point's circle on the map
        GridGov.refreshTiles();
        document.documentElement.setAttribute("data-coverage-accepted", String(f.id));
        $("gg-cov-planned").checked = true;
        return load();
      }).catch(function (err) {
        button.disabled = false;
        button.insertAdjacentHTML("afterend", '<span class="gg-error">采纳失败：' + e(err.message) + "</span>");
      });
    }

    // The base map's own circles and household clusters would hide the analysis: put them
    // aside while the view is open and bring back what was shown.
    var aside = ["service_circles", "households"], hidden = [];
    function show(on) {
      state.on = on;
      if (on) {
        hidden = aside.filter(function (k) { return baseLayers[k] && map.hasLayer(baseLayers[k]); });
        hidden.forEach(function (k) { map.removeLayer(baseLayers[k]); });
      } else {
        hidden.forEach(function (k) { baseLayers[k].addTo(map); });
        hidden = [];
      }
      $("gg-cov-body").hidden = !on;
      $("gg-cov-toggle").classList.toggle("gg-on", on);
      Object.keys(groups).forEach(function (k) {
        if (on) { groups[k].addTo(map); } else { map.removeLayer(groups[k]); }
      });
      if (on) { legend.addTo(map); load(); } else { legend.remove(); }
    }

    var overlays = {};
    Object.keys(groups).forEach(function (k) { overlays[names[k]] = groups[k]; });
    $("gg-cov-toggle").addEventListener("click", function () { show(!state.on); });
    ["gg-cov-radius", "gg-cov-level", "gg-cov-planned"].forEach(function (id) {
      $(id).addEventListener("change", function () { if (state.on) { groups.sites.clearLayers(); $("gg-cov-recs").innerHTML = ""; load(); } });
    });
    $("gg-cov-recommend").addEventListener("click", recommend);
    api.call("GET", "/api/coverage/presets").then(function (p) { state.presets = p; optionLabels(); }).catch(function () { optionLabels(); });

    GridGov.coverage = { state: state, groups: groups, names: overlays, show: show, load: load, recommend: recommend, shareColor: shareColor };
  });
})();
