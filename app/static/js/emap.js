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
  window.GridGov = GridGov;
  document.addEventListener("DOMContentLoaded", function () {
    var close = document.getElementById("gg-panel-close");
    if (close) { close.addEventListener("click", function () { document.getElementById("gg-panel").hidden = true; }); }
  });
})();
