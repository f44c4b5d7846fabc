/* Links into the e-map: /emap?grid=<id> flies to that grid and opens its notice board (the
 * overview's and the ledgers' click-through). */
(function () {
  "use strict";
  GridGov.onReady(function (map) {
    var id = new URLSearchParams(window.location.search).get("grid");
    if (!id || !/^[0-9]{1,10}$/.test(id)) { return; }
    GridGov.whenSettled(function () {
      window.GridGovApi.request("GET", "/api/grids/" + id)
        .then(function (res) { return res.ok ? res.body : null; })
        .then(function (feature) {
          if (!feature) { return; }
          var b = feature.properties.bounds;
          if (b && b.length === 4) {
            map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { animate: false, padding: [20, 20] });
          } else if (feature.geometry) {
            map.fitBounds(L.geoJSON(feature).getBounds(), { animate: false, padding: [20, 20] });
          }
          return GridGov.openGrid(feature);
        })
        .then(function () { document.documentElement.setAttribute("data-emap-linked", id); });
    });
  });
})();
