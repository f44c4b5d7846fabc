/* Field work on the e-map: the overdue households of the caller's grids (points only: no
   address, no name) and a worker's patrol tracks of one day with the roads left unpatrolled
   (from /api/visits/overdue-map and /api/patrols/map). Names go into the page as text. */
(function () {
  "use strict";
  if (!window.GridGov) { return; }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; }, function () { return null; });
  }
  var READERS = { admin: true, centre: true, grid_chief: true, micro_chief: true, worker: true, party_member: true };
  function today() {
    var d = new Date(Date.now() + 8 * 3600 * 1000);  // China time
    return d.toISOString().slice(0, 10);
  }

  GridGov.onReady(function (map) {
    if (!READERS[(GridGov.settings || {}).role]) { return; }
    var overdue = null, tracks = null, box, check, select, day;

    function showOverdue() {
      if (overdue) { map.removeLayer(overdue); overdue = null; }
      document.documentElement.removeAttribute("data-overdue-drawn");
      if (!check.checked) { return; }
      var b = map.getBounds();
      var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(",");
      getJSON("/api/visits/overdue-map?bbox=" + bbox).then(function (fc) {
        if (!fc || !check.checked) { return; }
        overdue = L.geoJSON(fc, {
          pointToLayer: function (f, ll) {
            var key = f.properties.kind === "monthly";
            return L.circleMarker(ll, { radius: key ? 6 : 4, color: "#c62828", weight: 1, fillColor: key ? "#c62828" : "#ef9a9a", fillOpacity: 0.8 });
          },
          onEachFeature: function (f, l) {
            var tip = document.createElement("span");
            tip.textContent = "超期未走访" + (f.properties.kind === "monthly" ? "（重点人群）" : "") + " · " + f.properties.grid_code;
            l.bindTooltip(tip);
          }
        }).addTo(map);
        document.documentElement.setAttribute("data-overdue-drawn", String(fc.features.length));
      });
    }

    function showTracks() {
      if (tracks) { map.removeLayer(tracks); tracks = null; }
      document.documentElement.removeAttribute("data-tracks-drawn");
      if (!select.value) { return; }
      getJSON("/api/patrols/map?worker=" + encodeURIComponent(select.value) + "&date=" + encodeURIComponent(day.value || today()))
        .then(function (fc) {
          if (!fc) { return; }
          tracks = L.geoJSON(fc, {
            style: function (f) {
              return f.properties.layer === "track" ? { color: "#1565c0", weight: 4 } : { color: "#c62828", weight: 3, dashArray: "6 4" };
            },
            onEachFeature: function (f, l) {
              var tip = document.createElement("span"), p = f.properties;
              tip.textContent = p.layer === "track"
                ? "巡查 " + (p.started_local || "") + " – " + (p.ended_local || "进行中") + "，" + p.points + " 个位置"
                : "未巡查道路" + (p.name ? " " + p.name : "") + "，" + Math.round(p.unpatrolled_m) + " 米";
              l.bindTooltip(tip, { sticky: true });
            }
          }).addTo(map);
          document.documentElement.setAttribute("data-tracks-drawn", String(fc.features.length));
        });
    }

    var Control = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        box = L.DomUtil.create("div", "leaflet-bar gg-field-control");
        var label = L.DomUtil.create("label", "", box);
        check = L.DomUtil.create("input", "", label);
        check.type = "checkbox";
        check.id = "gg-overdue-toggle";
        label.appendChild(document.createTextNode(" 超期未访住户"));
        select = L.DomUtil.create("select", "", box);
        select.id = "gg-tracks-worker";
        select.title = "巡查轨迹";
        var none = document.createElement("option");
        none.value = "";
        none.textContent = "巡查轨迹：不显示";
        select.appendChild(none);
        day = L.DomUtil.create("input", "", box);
        day.type = "date";
        day.id = "gg-tracks-date";
        day.value = today();
        L.DomEvent.disableClickPropagation(box);
        check.addEventListener("change", showOverdue);
        select.addEventListener("change", showTracks);
        day.addEventListener("change", showTracks);
        return box;
      }
    });
    map.addControl(new Control());
    map.on("moveend", function () { if (check.checked) { showOverdue(); } });
    // The workers in the caller's field scope, fetched once the list is first opened.
    var listed = null;
    function listWorkers() {
      listed = listed || getJSON("/api/patrols/coverage?group=worker").then(function (res) {
        ((res && res.rows) || []).forEach(function (r) {
          var o = document.createElement("option");
          o.value = String(r.worker.id);
          o.textContent = r.worker.name || ("网格员 " + r.worker.id);
          select.appendChild(o);
        });
        document.documentElement.setAttribute("data-field-workers", String(select.options.length - 1));
      });
      return listed;
    }
    select.addEventListener("focus", listWorkers);
    select.addEventListener("mousedown", listWorkers);
    GridGov.fieldLayers = { listWorkers: listWorkers, showTracks: showTracks, showOverdue: showOverdue };
  });
})();
