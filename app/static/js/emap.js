/* The e-map's own script: the notice-board panel, and a registry that feature scripts hook into. */
(function () {
  "use strict";
  var readyFns = [];
  var GridGov = {
    map: null,
    layers: {},
    config: {},
    /* Feature scripts call this; fn(map, layers, config) runs once the map exists. */
    onReady: function (fn) {
      if (GridGov.map) { fn(GridGov.map, GridGov.layers, GridGov.config); } else { readyFns.push(fn); }
    },
    ready: function (map, layers, config) {
      GridGov.map = map;
      GridGov.layers = layers;
      GridGov.config = config || {};
      readyFns.splice(0).forEach(function (fn) { fn(map, layers, GridGov.config); });
      GridGov.whenSettled(function () { document.documentElement.setAttribute("data-emap-ready", "1"); });
    },
    /* Run fn once the map has stopped moving. The page fits the map to its home extent just
       before ready(); Leaflet animates that zoom (from the next animation frame, 250 ms), and a
       view set while it runs is dropped — so "ready" waits for it to end. */
    whenSettled: function (fn) {
      var map = GridGov.map;
      L.Util.requestAnimFrame(function () {
        if (map._animatingZoom) { map.once("zoomend", function () { fn(); }); } else { fn(); }
      });
    },
    escape: function (s) {
      return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
        return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
      });
    },
    /* Grid layers call this for every feature: a click opens the grid's notice board. */
    bindGrid: function (feature, layer) {
      layer.on("click", function (e) {
        if (GridGov.clickHandlers.some(function (h) { return h(feature, layer, e) === false; })) { return; }
        L.DomEvent.stopPropagation(e);
        GridGov.showNoticeBoard(feature.properties.id);
      });
    },
    /* Handlers that may take a grid click first (edit mode, locate); return false to stop it. */
    clickHandlers: [],
    panel: function (html) {
      var panel = document.getElementById("gg-panel");
      document.getElementById("gg-panel-body").innerHTML = html;
      panel.hidden = false;
    },
    showNoticeBoard: function (gridId) {
      fetch("/api/grids/" + encodeURIComponent(gridId), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (!res.ok) { GridGov.panel('<p class="gg-error">' + GridGov.escape(res.body.error && res.body.error.message) + "</p>"); return; }
          GridGov.panel(GridGov.noticeBoardHtml(res.body.properties));
        })
        .catch(function (err) { GridGov.panel('<p class="gg-error">加载失败：' + GridGov.escape(err) + "</p>"); });
    },
    noticeBoardHtml: function (p) {
      var e = GridGov.escape;
      var chain = (p.ancestors || []).map(function (a) { return e(a.name); }).concat([e(p.name)]).join(" › ");
      var rows = (p.responsible || []).map(function (w) {
        return "<tr><td>" + e(w.role_name) + "</td><td>" + e(w.name) + "</td><td>" +
          (w.phone ? '<a href="tel:' + e(w.phone) + '">' + e(w.phone) + "</a>" : "") + "</td><td>" +
          (w.on_duty ? "在岗" : "不在岗") + "</td></tr>";
      }).join("");
      return '<section class="gg-board" data-grid-id="' + e(p.id) + '">' +
        '<h2>网格公示牌</h2><p class="gg-chain">' + chain + "</p>" +
        "<dl><dt>网格名称</dt><dd class=\"gg-name\">" + e(p.name) + "</dd>" +
        "<dt>网格编码</dt><dd>" + e(p.code) + "</dd>" +
        "<dt>层级</dt><dd>" + e(p.level_name) + (p.kind === "dedicated" ? "（专属网格）" : "") + "</dd>" +
        "<dt>户数</dt><dd class=\"gg-households\">" + e(p.household_count) + "</dd>" +
        "<dt>面积</dt><dd>" + (p.area_m2 / 10000).toFixed(2) + " 公顷</dd></dl>" +
        "<h3>责任人</h3><table class=\"gg-people\"><thead><tr><th>职务</th><th>姓名</th><th>电话</th><th>状态</th></tr></thead><tbody>" +
        (rows || '<tr><td colspan="4">暂无</td></tr>') + "</tbody></table></section>";
    }
  };
  /* A place picker (街道/乡镇, 社区/村) that flies the map to the chosen grid. */
  GridGov.onReady(function (map, layers, config) {
    var places = config.places || [];
    if (!places.length) { return; }
    var Picker = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-picker");
        var html = '<select id="gg-place" title="定位到"><option value="">定位到…</option>';
        places.forEach(function (p) {
          html += '<option value="' + GridGov.escape(p.id) + '">' + (p.level > 1 ? "　" : "") + GridGov.escape(p.name) + "</option>";
        });
        div.innerHTML = html + "</select>";
        L.DomEvent.disableClickPropagation(div);
        div.querySelector("select").addEventListener("change", function (ev) {
          if (!ev.target.value) { return; }
          fetch("/api/grids/" + ev.target.value).then(function (r) { return r.json(); }).then(function (f) {
            var b = f.properties.bounds;
            map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
            GridGov.panel(GridGov.noticeBoardHtml(f.properties));
          });
        });
        return div;
      }
    });
    map.addControl(new Picker());
  });
  /* ---------------------------------------------------------------- building the map */

  var LEVEL_STYLE = {
    1: { color: "#b71c1c", weight: 4, fillOpacity: 0.0 },
    2: { color: "#e65100", weight: 3, fillOpacity: 0.03 },
    3: { color: "#1565c0", weight: 2, fillOpacity: 0.05 },
    4: { color: "#2e7d32", weight: 1, fillOpacity: 0.08, dashArray: "4 3" },
    5: { color: "#6a1b9a", weight: 1, fillOpacity: 0.08, dashArray: "2 3" }
  };

  /* An element with text (never parsed as HTML). */
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  GridGov.el = el;

  /* A tooltip of label/value rows, built as text nodes. */
  function tipRows(rows) {
    var div = el("div", "gg-tip");
    rows.forEach(function (r) {
      var row = el("div", "gg-tip-row");
      row.appendChild(el("b", null, r[0]));
      row.appendChild(document.createTextNode(r[1] == null ? "" : String(r[1])));
      div.appendChild(row);
    });
    return div;
  }
  GridGov.tipRows = tipRows;

  /* A grid's name on the map: a marker whose label is text, remembering the grid it names. */
  GridGov.labelMarker = function (label, latlng) {
    var div = el("div", "gg-label gg-label-" + Number(label.level), label.name);
    div.setAttribute("data-grid-id", String(label.grid_id));
    var marker = L.marker(latlng, {
      interactive: false, keyboard: false,
      icon: L.divIcon({ className: "empty", iconSize: [0, 0], html: div })
    });
    marker.gridId = label.grid_id;
    marker.labelLevel = Number(label.level);
    return marker;
  };

  GridGov.gridTooltip = function (layer) {
    var p = layer.feature.properties;
    if (p.outline) { return tipRows([["名称", p.name], ["编码", p.code]]); }
    return tipRows([["名称", p.name], ["编码", p.code], ["户数", p.household_count]]);
  };

  function gridLayer(level, features) {
    var style = LEVEL_STYLE[level] || LEVEL_STYLE[5];
    return L.geoJSON({ type: "FeatureCollection", features: features }, {
      style: function (f) {
        if (f.properties.outline) { return L.extend({}, style, { fillOpacity: 0, dashArray: "6 4", weight: 2 }); }
        return L.extend({ fillColor: style.color }, style);
      },
      interactive: true,
      onEachFeature: function (f, l) {
        l.bindTooltip(GridGov.gridTooltip, { sticky: true });
        if (f.properties.outline) { return; }  // orientation only: no notice board
        GridGov.bindGrid(f, l);
        l.on("mouseover", function () { l.setStyle({ weight: 4, fillOpacity: 0.2 }); });
        l.on("mouseout", function () { l.setStyle(L.extend({ fillColor: style.color }, style)); });
      }
    });
  }

  function build(settings, data) {
    var map = L.map("gg-map", { preferCanvas: true, maxZoom: 19, minZoom: 3, zoomControl: true });
    L.control.scale({ imperial: false }).addTo(map);
    var base = {}, overlays = {}, layers = {};
    (settings.basemap || []).forEach(function (b) {
      var t = L.tileLayer(b.url, { attribution: b.attribution, subdomains: b.subdomains || "abc", maxZoom: 19 });
      t.addTo(map);
      if (b.overlay) { overlays[b.name] = t; } else { base[b.name] = t; }
    });
    var names = data.level_names || {};
    [1, 2, 3, 4, 5].forEach(function (level) {
      var feats = data.grids.features.filter(function (f) { return f.properties.level === level; });
      if (!feats.length) { return; }
      var layer = gridLayer(level, feats);
      if (level !== 5) { layer.addTo(map); }
      layers["grids_level_" + level] = layer;
      overlays[(names[level] || String(level)) + "（" + feats.length + "）"] = layer;
    });
    var labels = L.featureGroup();
    (data.labels || []).forEach(function (lb) { labels.addLayer(GridGov.labelMarker(lb, [lb.lat, lb.lon])); });
    labels.addTo(map);
    layers.labels = labels;
    overlays["网格名称标注"] = labels;

    var households = L.markerClusterGroup({ chunkedLoading: true });
    households.addLayers((data.households || []).map(function (row) {
      return L.circleMarker([row[0], row[1]], { radius: 4, color: "#1565c0", weight: 1, fillOpacity: 0.7 });
    }));
    households.addTo(map);
    layers.households = households;
    overlays["住户（" + (data.households || []).length + "）"] = households;

    var circles = L.geoJSON(data.service_circles, {
      style: function () { return { color: "#c62828", weight: 1, fillColor: "#c62828", fillOpacity: 0.05 }; },
      interactive: false
    }).addTo(map);
    layers.service_circles = circles;
    overlays["服务圈（按服务半径）"] = circles;

    var points = L.featureGroup();
    data.service_points.features.forEach(function (f) {
      var c = f.geometry.coordinates, p = f.properties;
      L.circleMarker([c[1], c[0]], { radius: 6, color: "#ffffff", weight: 2, fill: true, fillColor: "#c62828", fillOpacity: 0.95 })
        .bindTooltip(tipRows([["阵地", p.name], ["类型", p.kind_name], ["服务半径", Math.round(p.radius_m) + " 米"]]))
        .addTo(points);
    });
    points.addTo(map);
    layers.service_points = points;
    overlays["党群服务阵地"] = points;

    var cams = L.featureGroup();
    data.cameras.features.forEach(function (f) {
      var c = f.geometry.coordinates, p = f.properties;
      L.circleMarker([c[1], c[0]], { radius: 3, color: "#37474f", weight: 1, fill: true, fillOpacity: 0.8 })
        .bindTooltip(tipRows([["探头", p.code], ["名称", p.name || ""]]))
        .addTo(cams);
    });
    layers.cameras = cams;
    overlays["监控探头"] = cams;

    L.control.layers(base, overlays, { collapsed: false }).addTo(map);
    var h = data.home;
    if (h) { map.fitBounds([[h[1], h[0]], [h[3], h[2]]]); } else { map.setView([35.0, 105.0], 4); }
    GridGov.ready(map, layers, { level_names: names, places: data.places || [], label_levels: data.label_levels || [] });
  }

  function start() {
    var close = document.getElementById("gg-panel-close");
    if (close) { close.addEventListener("click", function () { document.getElementById("gg-panel").hidden = true; }); }
    var node = document.getElementById("gg-emap-settings");
    if (!node || !document.getElementById("gg-map")) { return; }
    var settings = JSON.parse(node.textContent);
    fetch(settings.layers_url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error("地图数据加载失败（" + r.status + "）"); }
        return r.json();
      })
      .then(function (data) { build(settings, data); })
      .catch(function (err) {
        var msg = el("p", "gg-error", err.message || String(err));
        document.getElementById("gg-panel-body").appendChild(msg);
        document.getElementById("gg-panel").hidden = false;
      });
  }

  window.GridGov = GridGov;
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
