/* The e-map's vector tiles drawn as Leaflet tiles, one tile a frame: how the map is drawn where
   the browser draws WebGL in software (no GPU: SwiftShader, llvmpipe, a virtual desktop).

   There, one MapLibre repaint of the whole view (gl_layer.js) costs several hundred
   milliseconds of CPU in the GPU process, and the frame that shows it waits for all of it: the
   map froze for that long whenever a pan or a zoom ended. Here a second MapLibre map, 512 px
   square and off the page (the painter), draws one 512-px tile at a time, placed exactly on
   MapLibre's own tile so that it draws that one tile of each source; once the GPU process has
   drawn it (a fence, looked at once a frame) the picture is copied into a Leaflet tile (an
   ImageBitmap, handed over without a copy) and the next tile is drawn. Leaflet shows, moves and
   zooms these tiles as it does any tile layer, so a pan draws only the tiles that come into
   view, and no frame waits for more than one tile.

   The MapLibre map of the view (GridGov.gl) is kept, undrawn: it loads the tiles in view and
   answers what lies where (hover, the grids and cases in view). The painter follows its style:
   a layer shown or hidden, a source added, new tiles after an edit — and every tile in view is
   drawn again, the old picture staying until the new one is in. */
(function () {
  "use strict";
  if (!window.L || !window.maplibregl) { return; }

  var SIZE = 512;
  // The painter's zoom is a millionth above the tile's: its view then lies strictly inside the
  // tile (at the exact zoom MapLibre also draws the neighbours that only touch its edges, four
  // tiles' work for one); the picture is scaled by 1.0000007, far below a pixel.
  var EPSILON = 1e-6;

  function tileCentre(x, y, z) {
    var n = Math.pow(2, z);
    var lng = (x + 0.5) / n * 360 - 180;
    var k = Math.PI * (1 - 2 * (y + 0.5) / n);
    var lat = Math.atan(0.5 * (Math.exp(k) - Math.exp(-k))) * 180 / Math.PI;
    return [lng, lat];
  }

  L.GridGovGLTiles = L.GridLayer.extend({
    options: {
      tileSize: SIZE,
      // Above raster basemaps (tile layers of zIndex 1), below the overlays.
      zIndex: 5,
      keepBuffer: 1,
      // A tile still not loaded after this long (ms) is drawn with what has come.
      timeout: 15000
    },

    initialize: function (view, options) {
      L.setOptions(this, options);
      this._view = view;        // the MapLibre map of the view, whose style is followed
      this._queue = [];         // tiles to draw: {key, coords, el, done, again, gen}
      this._current = null;      // the tile being drawn
      this._copying = [];        // tiles drawn, their copies not in yet
      this._gen = 0;             // the painter's style, counted: a tile drawn before a change is drawn again
      this._waiters = [];
      this.painted = 0;         // tiles drawn, first time and again (for tests and benchmarks)
      this.paintedAt = 0;       // when the last was put in (performance.now())
    },

    onAdd: function (map) {
      var host = this._host = L.DomUtil.create("div", "gg-gl-painter", document.body);
      host.setAttribute("aria-hidden", "true");
      host.style.cssText = "position:absolute;left:-20000px;top:0;width:" + SIZE + "px;height:" +
        SIZE + "px;overflow:hidden;pointer-events:none";
      this.on("tileunload", this._dropTile, this);
      L.GridLayer.prototype.onAdd.call(this, map);
      // A change of the view's style is seen when MapLibre applies it (once for a batch of
      // changes, at its next render).
      this._onViewStyle = L.Util.bind(this.restyle, this);
      this._view.on("styledata", this._onViewStyle);
      this.restyle();
    },

    onRemove: function (map) {
      this._view.off("styledata", this._onViewStyle);
      this.off("tileunload", this._dropTile, this);
      if (this._painter) { this._painter.remove(); this._painter = null; }
      L.DomUtil.remove(this._host);
      this._queue = [];
      this._current = null;
      this._copying = [];
      L.GridLayer.prototype.onRemove.call(this, map);
      this._settle();
    },

    /* The painter takes the view's style: new tiles of a source (after an edit), layers shown,
       hidden, added or restyled. Every tile in view is then drawn again. */
    restyle: function () {
      var view = this._view;
      if (!view.style || !view.style._loaded) { return; }
      var style = view.getStyle();
      var text = JSON.stringify(style);
      if (text === this._styleText) { return; }
      this._styleText = text;
      style.transition = { duration: 0, delay: 0 };
      if (!this._painter) { this._makePainter(style); return; }
      var painter = this._painter;
      // New tiles of a source (a refresh after an edit): the source reloads, its layers stay.
      Object.keys(style.sources).forEach(function (id) {
        var src = painter.getSource(id), want = style.sources[id];
        if (src && src.setTiles && want.tiles && JSON.stringify(src.serialize().tiles) !== JSON.stringify(want.tiles)) {
          src.setTiles(want.tiles);
        }
      });
      painter.setStyle(style, { diff: true });
      this._gen += 1;
      this.redrawAll();
    },

    _makePainter: function (style) {
      var self = this;
      this._painter = new maplibregl.Map({
        container: this._host, style: style, interactive: false, attributionControl: false,
        fadeDuration: 0, trackResize: false, center: [0, 0], zoom: 0,
        // The drawing stays in the canvas after the frame, until it is copied (below).
        canvasContextAttributes: { preserveDrawingBuffer: true },
        // The tiles of a few views around (each drawn tile needs one of each source).
        maxTileCacheSize: 96
      });
      this._painter.on("error", function (ev) {
        if (window.console) { window.console.warn("map tiles:", ev && ev.error && ev.error.message); }
      });
      this._painter.once("load", function () { self._ready = true; self._next(); });
    },

    createTile: function (coords, done) {
      var el = document.createElement("canvas");
      el.className = "gg-gl-tile";
      this._queue.push({ key: this._tileCoordsToKey(coords), coords: coords, el: el, done: done });
      this._next();
      return el;
    },

    /* Draw every tile shown again (the old picture stays until the new one is in). */
    redrawAll: function () {
      // Tiles being drawn or copied are drawn again when their copy comes in (_copy).
      var queued = {};
      this._queue.concat(this._copying, this._current ? [this._current] : []).forEach(function (job) { queued[job.key] = true; });
      for (var key in this._tiles) {
        var t = this._tiles[key];
        if (!t.loaded || !t.current || queued[key]) { continue; }
        this._queue.push({ key: key, coords: t.coords, el: t.el, done: null, again: true });
      }
      this._next();
    },

    /* Resolves once no tile is waiting to be drawn. */
    whenPainted: function () {
      var self = this;
      return new Promise(function (resolve) {
        self._waiters.push(resolve);
        self._settle();
      });
    },

    _settle: function () {
      if (this._current || this._copying.length || (this._queue.length && this._map)) { return; }
      this._waiters.splice(0).forEach(function (fn) { fn(); });
    },

    _dropTile: function (e) {
      this._queue = this._queue.filter(function (job) { return job.el !== e.tile; });
      this._copying.concat(this._current ? [this._current] : []).forEach(function (job) {
        if (job.el === e.tile) { job.dropped = true; }
      });
      this._settle();
    },

    /* The next tile to draw: of the zoom shown, nearest the centre of the view. */
    _take: function () {
      var map = this._map, z = this._tileZoom, best = -1, bestD = Infinity;
      if (!map || !this._queue.length) { return null; }
      var centre = map.project(map.getCenter(), z).divideBy(SIZE);
      for (var i = 0; i < this._queue.length; i++) {
        var c = this._queue[i].coords;
        var d = (c.z === z ? 0 : 1e9) + Math.pow(c.x + 0.5 - centre.x, 2) + Math.pow(c.y + 0.5 - centre.y, 2);
        if (d < bestD) { bestD = d; best = i; }
      }
      return this._queue.splice(best, 1)[0];
    },

    _next: function () {
      if (this._current || !this._ready || !this._painter) { this._settle(); return; }
      var job = this._take();
      if (!job) { this._settle(); return; }
      this._current = job;
      job.gen = this._gen;
      var self = this, painter = this._painter, c = job.coords, finished = false, timer = null;
      var finish = function () {
        if (finished) { return; }
        finished = true;
        clearTimeout(timer);
        painter.off("idle", finish);
        self._whenDrawn(job);
      };
      painter.on("idle", finish);
      timer = setTimeout(function () {
        // Tiles that never came: draw what has.
        painter.once("render", finish);
        painter.triggerRepaint();
      }, this.options.timeout);
      painter.jumpTo({ center: tileCentre(c.x, c.y, c.z - 1), zoom: c.z - 1 + EPSILON });
      painter.triggerRepaint();
    },

    /* Copy the tile once the GPU process has drawn it. MapLibre's draw calls return at once;
       the drawing happens later in the GPU process, in software some 30-120 ms a tile. A copy
       taken now (createImageBitmap, drawImage) would hold the page's main thread until then,
       and every frame with it. A fence (WebGL 2) tells when the drawing is done, looked at once
       a frame; the drawing stays in the canvas meanwhile (preserveDrawingBuffer). */
    _whenDrawn: function (job) {
      var self = this, gl = null;
      try { gl = this._painter.painter.context.gl; } catch (err) { gl = null; }
      if (!gl || !gl.fenceSync) { this._copy(job); return; }
      var fence = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
      gl.flush();
      var look = function () {
        if (!self._painter || gl.isContextLost()) { self._copy(job); return; }
        if (gl.getSyncParameter(fence, gl.SYNC_STATUS) !== gl.SIGNALED) { L.Util.requestAnimFrame(look); return; }
        gl.deleteSync(fence);
        self._copy(job);
      };
      L.Util.requestAnimFrame(look);
    },

    /* Copy what the painter drew into the job's tile. createImageBitmap takes its copy now and
       resolves later: the next tile is drawn meanwhile. Without it, a 2D canvas takes the copy. A
       tile drawn before the style changed is drawn again. */
    _copy: function (job) {
      var self = this;
      this._current = null;
      if (!this._painter) { this._settle(); return; }
      var canvas = this._painter.getCanvas();
      this._copying.push(job);
      var put = function (picture) {
        self._copying.splice(self._copying.indexOf(job), 1);
        if (!job.dropped && self._map) {
          show(job.el, picture);
          self.painted += 1;
          self.paintedAt = performance.now();
          if (job.done) { job.done(null, job.el); }
          var queued = self._queue.some(function (other) { return other.key === job.key; });
          if (job.gen !== self._gen && !queued) {
            self._queue.push({ key: job.key, coords: job.coords, el: job.el, done: null, again: true });
          }
        }
        self._next();
      };
      if (window.createImageBitmap) {
        var taken = createImageBitmap(canvas);
        this._next();
        taken.then(put, function () { put(null); });
        return;
      }
      var copy = document.createElement("canvas");
      copy.width = canvas.width;
      copy.height = canvas.height;
      copy.getContext("2d").drawImage(canvas, 0, 0);
      put(copy);
    }
  });

  /* Put a picture (an ImageBitmap, handed over without a copy, or a canvas) into a tile. */
  function show(el, picture) {
    if (!picture) { return; }
    var bitmaps = typeof ImageBitmap !== "undefined" && picture instanceof ImageBitmap;
    var ctx = bitmaps ? el.getContext("bitmaprenderer") : null;
    if (ctx) {
      // The canvas keeps its own size (300 × 150 unless set), which drawing it would use.
      if (el.width !== picture.width || el.height !== picture.height) {
        el.width = picture.width;
        el.height = picture.height;
      }
      ctx.transferFromImageBitmap(picture);
      return;
    }
    var ctx2d = el.getContext("2d");
    if (!ctx2d) { return; }
    el.width = picture.width;
    el.height = picture.height;
    ctx2d.drawImage(picture, 0, 0);
  }

  L.gridGovGLTiles = function (view, options) { return new L.GridGovGLTiles(view, options); };
})();
