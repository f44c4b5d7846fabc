/* The MapLibre GL layer of the e-map inside Leaflet, redrawn only when the view needs it.

   @maplibre/maplibre-gl-leaflet moves the MapLibre map along with Leaflet on every `move` event
   (at most every 32 ms): each one is a full WebGL repaint of every layer. Where the browser draws
   WebGL in software (no GPU: SwiftShader, llvmpipe, a virtual desktop) one repaint costs
   several hundred milliseconds, so a pan ran at one to three frames a second. This layer leaves
   the drawn canvas where it is while the map moves: it lies in Leaflet's pane and moves with it,
   like any tile, and is drawn a margin (`padding`) wider than the view on every side. It is
   redrawn when the view is about to leave what was drawn, when the movement ends, and after a
   zoom; a zoom animates the drawn canvas by a CSS transform, as Leaflet does for its tiles. A
   redraw for a view already drawn is skipped. */
(function () {
  "use strict";
  if (!window.L || !L.MaplibreGL) { return; }

  L.GridGovGL = L.MaplibreGL.extend({
    options: {
      // A redraw during a movement comes once the view has moved this share of the margin.
      redrawAt: 0.75
    },

    onAdd: function (map) {
      L.MaplibreGL.prototype.onAdd.call(this, map);
      this._drawnAt = map.containerPointToLayerPoint([0, 0]);
    },

    getEvents: function () {
      var events = L.MaplibreGL.prototype.getEvents.call(this);
      events.move = this._moved;
      events.moveend = this._sync;
      return events;
    },

    /* Leaflet moved the map: redraw only when the view nears the edge of the drawn canvas. */
    _moved: function () {
      if (!this._map || this._zooming || !this._drawnAt) { return; }
      var pad = this._map.getSize().multiplyBy(this.options.padding * this.options.redrawAt);
      var now = this._map.containerPointToLayerPoint([0, 0]);
      if (Math.abs(now.x - this._drawnAt.x) > pad.x || Math.abs(now.y - this._drawnAt.y) > pad.y) {
        this._throttledSync();
      }
    },

    _throttledSync: function () {
      if (!this._throttled) { this._throttled = L.Util.throttle(this._sync, this.options.updateInterval, this); }
      this._throttled();
    },

    /* Place the canvas around the current view and move the MapLibre map there (one repaint),
       unless that is where it already is. */
    _sync: function () {
      if (!this._map || this._zooming || !this._glMap) { return; }
      var map = this._map, size = map.getSize(), centre = map.getCenter(), zoom = map.getZoom();
      var key = [centre.lat, centre.lng, zoom, size.x, size.y].join(",");
      if (key === this._syncedKey) { return; }
      this._syncedKey = key;
      this._update();
    },

    _update: function () {
      L.MaplibreGL.prototype._update.call(this);
      if (this._map && !this._zooming) { this._drawnAt = this._map.containerPointToLayerPoint([0, 0]); }
    },

    _transformGL: function (gl) {
      this._syncedKey = null;
      L.MaplibreGL.prototype._transformGL.call(this, gl);
      var map = this._map, size = map.getSize(), centre = map.getCenter();
      this._syncedKey = [centre.lat, centre.lng, map.getZoom(), size.x, size.y].join(",");
    },

    /* The zoom animation scales the canvas as drawn, wherever it was drawn: its top-left corner
       goes where that place lies at the new zoom (Leaflet's own rule for its layers). */
    _animateZoom: function (e) {
      var map = this._map, canvas = this._glMap._actualCanvas;
      var corner = L.DomUtil.getPosition(this._container);
      var where = map._latLngToNewLayerPoint(map.layerPointToLatLng(corner), e.zoom, e.center);
      L.DomUtil.setTransform(canvas, where.subtract(corner), map.getZoomScale(e.zoom));
    }
  });

  L.gridGovGL = function (options) { return new L.GridGovGL(options); };
})();
