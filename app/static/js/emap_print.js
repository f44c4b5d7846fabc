/* 打印当前地图: a button on the e-map that prints the map as it is in view, through the
   browser's print dialog (the print stylesheet in emap.css hides the page frame and panels). */
(function () {
  "use strict";
  if (!window.GridGov) { return; }
  GridGov.onReady(function (map) {
    var Print = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var box = L.DomUtil.create("div", "leaflet-bar gg-print-control");
        var button = L.DomUtil.create("a", "", box);
        button.href = "#";
        button.id = "gg-print-map";
        button.title = "打印当前地图";
        button.setAttribute("role", "button");
        button.textContent = "印";
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.on(button, "click", function (e) {
          L.DomEvent.preventDefault(e);
          window.print();
        });
        return box;
      }
    });
    map.addControl(new Print());
  });
})();
