/* 专业网格 (多网合一) on the e-map: for the roles that read departments' networks, a control
   to choose one; its grids are drawn over the unified grid, green where a grid nests cleanly
   in one unified 网格, orange where it crosses several (from /api/networks/<id> and its
   mismatch report). Names go into tooltips as text. */
(function () {
  "use strict";
  if (!window.GridGov) { return; }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; }, function () { return null; });
  }
  var READERS = { admin: true, centre: true, department: true };
  GridGov.onReady(function (map, layers, config) {
    var layer = null;
    if (!READERS[(GridGov.settings || {}).role]) { return; }
    getJSON("/api/networks").then(function (list) {
      if (!list || !list.networks || !list.networks.length) { return; }
      var Control = L.Control.extend({
        options: { position: "topright" },
        onAdd: function () {
          var box = L.DomUtil.create("div", "leaflet-bar gg-networks-control");
          var select = L.DomUtil.create("select", "", box);
          select.id = "gg-networks-select";
          select.title = "专业网格图层";
          var none = document.createElement("option");
          none.value = "";
          none.textContent = "专业网格：不显示";
          select.appendChild(none);
          var all = document.createElement("option");
          all.value = "all";
          all.textContent = "专业网格：全部（矢量瓦片）";
          select.appendChild(all);
          list.networks.forEach(function (n) {
            var o = document.createElement("option");
            o.value = String(n.id);
            o.textContent = n.department.name + " · " + n.name;
            select.appendChild(o);
          });
          L.DomEvent.disableClickPropagation(box);
          select.addEventListener("change", function () { show(select.value); });
          return box;
        }
      });
      map.addControl(new Control());
    });

    /* Every network the caller sees, as vector tiles (/tiles/networks/…, layer "networks"). */
    function tiles(visible) {
      var gl = GridGov.gl;
      if (!gl) { return; }
      if (visible && !gl.getSource("networks")) {
        gl.addSource("networks", { type: "vector", minzoom: 0, maxzoom: 16,
          tiles: [window.location.origin + "/tiles/networks/{z}/{x}/{y}.mvt"] });
        gl.addLayer({ id: "networks-line", type: "line", source: "networks", "source-layer": "networks",
          paint: { "line-color": "#00897b", "line-width": 2, "line-dasharray": [3, 2] } });
      }
      if (gl.getLayer("networks-line")) {
        gl.setLayoutProperty("networks-line", "visibility", visible ? "visible" : "none");
      }
    }

    function show(id) {
      if (layer) { map.removeLayer(layer); layer = null; }
      document.documentElement.removeAttribute("data-networks-drawn");
      tiles(id === "all");
      if (!id || id === "all") { return; }
      Promise.all([getJSON("/api/networks/" + id), getJSON("/api/networks/" + id + "/mismatch")])
        .then(function (r) {
          var fc = r[0], report = r[1];
          if (!fc) { return; }
          var nests = {};
          ((report && report.grids) || []).forEach(function (g) { nests[g.id] = g.nests; });
          layer = L.geoJSON(fc, {
            style: function (f) {
              var ok = nests[f.properties.id];
              return { color: ok ? "#2e7d32" : "#ef6c00", weight: 2, dashArray: "5 4", fillOpacity: 0.08 };
            },
            onEachFeature: function (f, l) {
              var tip = document.createElement("span");
              tip.textContent = f.properties.name + "（" + f.properties.code + "）" +
                (nests[f.properties.id] ? " 完整嵌套" : " 跨统一网格");
              l.bindTooltip(tip, { sticky: true });
            }
          }).addTo(map);
          document.documentElement.setAttribute("data-networks-drawn", String(fc.features.length));
        });
    }
  });
})();
