/* Star ratings (评星定级) on the e-map: a control shows each micro-grid's latest frozen stars at
   its label point (from /api/stars/map, the caller's grids only), and a grid's notice board
   gets its latest rating (from /api/stars/grids/<id>). Text only, never HTML from data. */
(function () {
  "use strict";
  if (!window.GridGov) { return; }
  var READERS = { admin: true, centre: true, grid_chief: true, micro_chief: true, worker: true, party_member: true };

  function starText(n) {
    var s = "";
    for (var i = 0; i < 5; i++) { s += i < n ? "★" : "☆"; }
    return s;
  }

  GridGov.onReady(function (map) {
    if (!READERS[(GridGov.settings || {}).role]) { return; }
    var layer = null;

    function show(on) {
      if (layer) { map.removeLayer(layer); layer = null; }
      document.documentElement.removeAttribute("data-stars-drawn");
      if (!on) { return; }
      window.GridGovApi.call("GET", "/api/stars/map").then(function (fc) {
        layer = L.layerGroup();
        fc.features.forEach(function (f) {
          var p = f.properties, box = document.createElement("span");
          box.className = "gg-star-label";
          box.textContent = starText(p.stars);
          box.title = p.name + "（" + p.code + "）" + p.quarter + " " + p.stars + " 星";
          var c = f.geometry.coordinates;
          L.marker([c[1], c[0]], {
            icon: L.divIcon({ className: "gg-star-icon", html: box, iconSize: null }),
            interactive: false, keyboard: false
          }).addTo(layer);
        });
        layer.addTo(map);
        document.documentElement.setAttribute("data-stars-drawn", String(fc.features.length));
      }).catch(function () { document.documentElement.setAttribute("data-stars-drawn", "0"); });
    }

    var Control = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var box = L.DomUtil.create("label", "leaflet-bar gg-stars-control");
        var check = L.DomUtil.create("input", "", box);
        check.type = "checkbox";
        check.id = "gg-stars-toggle";
        box.appendChild(document.createTextNode(" 微网格星级"));
        L.DomEvent.disableClickPropagation(box);
        check.addEventListener("change", function () { show(check.checked); });
        return box;
      }
    });
    map.addControl(new Control());

    /* The notice board of a grid: its latest rating, when it has one. */
    var showBoard = GridGov.showNoticeBoard;
    GridGov.showNoticeBoard = function (gridId) {
      return Promise.resolve(showBoard.call(GridGov, gridId)).then(function () {
        return window.GridGovApi.request("GET", "/api/stars/grids/" + encodeURIComponent(gridId));
      }).then(function (res) {
        var board = document.querySelector(".gg-board[data-grid-id='" + String(parseInt(gridId, 10)) + "']");
        if (!board || !res.ok || !res.body.ratings.length) { return; }
        var r = res.body.ratings[0], p = document.createElement("p");
        p.className = "gg-board-stars";
        p.textContent = "评星定级：" + starText(r.stars) + "（" + r.quarter + "，" + r.stars + " 星）";
        board.insertBefore(p, board.querySelector("dl"));
      });
    };
  });
})();
