/* The MapLibre GL layer of the e-map inside Leaflet, redrawn only when the view needs it.

   @maplibre/maplibre-gl-leaflet moves the MapLibre map along with Leaflet on every `move` event
   (at most every 32 ms): each one is a full WebGL repaint of every layer. Where the browser draws
   WebGL in software (no GPU: SwiftShader, llvmpipe, a virtual desktop) one repaint costs
   several hundred milliseconds, so a pan ran at one to three frames a second. This layer leaves
   the drawn canvas where it is while the map moves: it lies in Leaflet's pane and moves with it,
   like any tile, drawn a margin (`padding`) wider than the view on every side, and a zoom
   animates it by a CSS transform, as Leaflet does for its tiles. It is redrawn for the new view
   when the movement ends or pauses, and after a zoom. During a movement it is redrawn too, as
   the library does, only where a repaint is quick (a GPU): the time of the last repaints
   decides. A redraw for a view already drawn is skipped. */
(function () {
  "use strict";
  if (!window.L || !L.MaplibreGL) { return; }

  L.GridGovGL = L.MaplibreGL.extend({
    options: {
      // Repaints slower than this (ms, the longest frame after one) are a software
      // renderer's: no repaint while the map moves.
      slowRepaint: 50,
      // ... and the canvas is redrawn once the movement has paused this long (ms).
      pause: 150
    },

    onAdd: function (map) {
      L.MaplibreGL.prototype.onAdd.call(this, map);
      this._repaintMs = 0;
      this._glMap.on("render", L.Util.bind(this._timeRepaint, this));
    },

    onRemove: function (map) {
      if (this._pauseTimer) { clearTimeout(this._pauseTimer); }
      L.MaplibreGL.prototype.onRemove.call(this, map);
    },

    getEvents: function () {
      var events = L.MaplibreGL.prototype.getEvents.call(this);
      events.move = this._moved;
      events.moveend = this._sync;
      return events;
    },

    /* How long the frames after a repaint took (the longest of the next three gaps between
       animation frames: WebGL draws asynchronously, its cost shows a frame or two later),
       averaged over repaints. */
    _timeRepaint: function () {
      if (this._timing) { return; }
      this._timing = true;
      var self = this, last = performance.now(), longest = 0, left = 3;
      var tick = function () {
        var now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
        if (--left > 0) { L.Util.requestAnimFrame(tick); return; }
        self._timing = false;
        self._repaintMs = self._repaintMs ? 0.7 * self._repaintMs + 0.3 * longest : longest;
      };
      L.Util.requestAnimFrame(tick);
    },

    /* A software renderer (no GPU), by the name WebGL gives, or repaints found slow. */
    _slow: function () {
      if (this._software === undefined) {
        this._software = false;
        try { this._software = softwareName(this._glMap.painter.context.gl); } catch (err) { this._software = false; }
      }
      return this._software || this._repaintMs > this.options.slowRepaint;
    },

    /* Leaflet moved the map: the canvas moved with it. A quick renderer redraws as the library
       does; a slow one once the movement ends, or a drag pauses. */
    _moved: function () {
      if (!this._map || this._zooming) { return; }
      if (!this._slow()) { this._throttledSync(); return; }
      if (this._pauseTimer) { clearTimeout(this._pauseTimer); this._pauseTimer = null; }
      // An animated pan (panBy, a drag's inertia) ends with moveend: no pause inside it, even
      // where a loaded machine draws its frames further apart than the pause.
      var anim = this._map._panAnim;
      if (anim && anim._inProgress) { return; }
      var self = this;
      this._pauseTimer = setTimeout(function () { self._pauseTimer = null; self._sync(); }, this.options.pause);
    },

    _throttledSync: function () {
      if (!this._throttled) { this._throttled = L.Util.throttle(this._sync, this.options.updateInterval, this); }
      this._throttled();
    },

    /* Place the canvas around the current view and move the MapLibre map there (one repaint),
       unless that is where it already is. */
    _sync: function () {
      if (this._pauseTimer) { clearTimeout(this._pauseTimer); this._pauseTimer = null; }
      if (!this._map || this._zooming || !this._glMap) { return; }
      var map = this._map, size = map.getSize(), centre = map.getCenter(), zoom = map.getZoom();
      var key = [centre.lat, centre.lng, zoom, size.x, size.y].join(",");
      if (key === this._syncedKey) { return; }
      this._syncedKey = key;
      this._update();
    },

    /* Whether MapLibre already shows Leaflet's view: a jump there would only repaint the same
       picture (MapLibre repaints on every jump, even to where it is). */
    _showsView: function () {
      var map = this._map, gl = this._glMap, c = map.getCenter(), g = gl.getCenter();
      return Math.abs(gl.getZoom() - (map.getZoom() - 1)) < 1e-9 &&
        Math.abs(g.lng - c.lng) < 1e-9 && Math.abs(g.lat - c.lat) < 1e-9;
    },

    _transformGL: function (gl) {
      this._syncedKey = null;
      if (!this._showsView()) { L.MaplibreGL.prototype._transformGL.call(this, gl); }
      var map = this._map, size = map.getSize(), centre = map.getCenter();
      this._syncedKey = [centre.lat, centre.lng, map.getZoom(), size.x, size.y].join(",");
    },

    /* Leave the drawing to Leaflet tiles (gl_tiles.js): this map keeps following the view,
       loading its tiles and answering what lies where (queryRenderedFeatures reads the tiles'
       features, not the pixels), but draws nothing and is not shown. */
    paintless: function () {
      this._container.style.visibility = "hidden";
      this._glMap.painter.render = function (style, options) { this.style = style; this.options = options; };
    },

    /* The end of a zoom's CSS transition: the library jumps MapLibre to the view once more and
       ends the zoom when that jump ends — a second full repaint of the view the zoom's last
       step has just drawn. When MapLibre shows the view already, the zoom ends at once. */
    _transitionEnd: function (e) {
      L.Util.requestAnimFrame(function () {
        if (!this._map || !this._glMap) { return; }
        if (!this._showsView()) { L.MaplibreGL.prototype._transitionEnd.call(this, e); return; }
        this._resizeContainer();
        this._zoomEnd();
      }, this);
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

  /* Whether a WebGL context is drawn in software, by its renderer's name. */
  function softwareName(gl) {
    var info = gl.getExtension("WEBGL_debug_renderer_info");
    var name = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(String(name));
  }

  /* Whether this browser draws WebGL in software, asked once of a small context of its own
     (before the map is made: the page then builds a style that is cheap to draw there). */
  var probed;
  L.GridGovGL.softwareRenderer = function () {
    if (probed === undefined) {
      probed = false;
      try {
        var canvas = document.createElement("canvas");
        canvas.width = canvas.height = 1;
        var gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
        if (gl) {
          probed = softwareName(gl);
          var lose = gl.getExtension("WEBGL_lose_context");
          if (lose) { lose.loseContext(); }
        }
      } catch (err) { probed = false; }
    }
    return probed;
  };

  L.gridGovGL = function (options) { return new L.GridGovGL(options); };
})();
