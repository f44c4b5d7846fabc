/* The e-map's own script: the map (vector tiles drawn by MapLibre GL inside Leaflet), grid names
   placed by the server, the grid under a click picked by the server, the notice-board panel, and
   a registry that feature scripts hook into. Nothing holds the whole city: the page asks for the
   tiles, names and grids of what is in view. One file of this size: the map, its layers and the
   registry are one object (GridGov) the feature scripts extend; each feature is its own file. */
(function () {
  "use strict";
  var readyFns = [];
  var GridGov = {
    map: null,
    gl: null,            // the MapLibre map drawing the tiles
    layers: {},
    config: {},
    settings: {},
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
    /* Handlers that may take a grid click first (edit mode, division, locate, reporting):
       h(feature, layer, event); return false to stop it. */
    clickHandlers: [],
    panel: function (html) {
      var panel = document.getElementById("gg-panel");
      document.getElementById("gg-panel-body").innerHTML = html;
      panel.hidden = false;
    },
    /* The panel showing one element (built with text nodes). */
    panelElement: function (node) {
      var body = document.getElementById("gg-panel-body");
      body.textContent = "";
      body.appendChild(node);
      document.getElementById("gg-panel").hidden = false;
    },
    showNoticeBoard: function (gridId) {
      return window.GridGovApi.request("GET", "/api/grids/" + encodeURIComponent(gridId))
        .then(function (res) {
          if (!res.ok) { GridGov.panel('<p class="gg-error">' + GridGov.escape(res.body && res.body.error && res.body.error.message) + "</p>"); return; }
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

  /* ---------------------------------------------------------------- level styles */

  /* The Leaflet path style of a grid level, from the one table of level styles (settings). */
  GridGov.levelStyle = function (level, extra) {
    var styles = GridGov.settings.level_styles;
    var s = styles[level] || styles[5];
    var style = {
      color: s.color, weight: s.weight, fillColor: s.color, fillOpacity: s.fill_opacity,
      dashArray: s.dash && s.dash.length ? s.dash.join(" ") : null
    };
    return L.extend(style, extra || {});
  };

  /* The names have a pane of their own, under the markers: where WebGL is drawn in software it
     is hidden while a zoom animates (emap.css) — hundreds of names, each moved by a transition
     of its own, were most of each frame. */
  var LABEL_PANE = "ggLabels";

  /* A grid's name on the map: a marker whose label is text, remembering the grid it names. */
  GridGov.labelMarker = function (label, latlng) {
    var div = el("div", "gg-label gg-label-" + Number(label.level), label.name);
    div.setAttribute("data-grid-id", String(label.grid_id));
    var marker = L.marker(latlng, {
      interactive: false, keyboard: false, pane: LABEL_PANE,
      icon: L.divIcon({ className: "empty", iconSize: [0, 0], html: div })
    });
    marker.gridId = label.grid_id;
    marker.labelLevel = Number(label.level);
    return marker;
  };

  /* ---------------------------------------------------------------- vector tiles */

  var TILE_SOURCES = { grids: 16, households: 16, points: 16, overrides: 16, cases: 16 };
  var tileVersion = 0;

  function tileUrl(layer) {
    var path = (GridGov.settings.tiles || "/tiles/{layer}/{z}/{x}/{y}.mvt").replace("{layer}", layer);
    // Tiles are fetched by MapLibre's worker: the URL must be absolute.
    return window.location.origin + path + (tileVersion ? "?v=" + tileVersion : "");
  }

  function absolute(path) { return /^https?:/.test(path) ? path : window.location.origin + path; }

  /* The vector basemap's source and its muted layers (green, water, buildings, roads). */
  function basemapLayers(sources, layers, bm, vbase) {
    var layerName = (vbase.layers || []).indexOf("basemap") >= 0 || !(vbase.layers || []).length ? "basemap" : vbase.layers[0];
    sources.basemap = { type: "vector", tiles: vbase.tiles.map(absolute), minzoom: bm.min_zoom || 0,
      maxzoom: bm.max_zoom || 16 };
    layers.push({ id: "basemap-green", type: "fill", source: "basemap", "source-layer": layerName,
      filter: ["==", ["get", "kind"], "green"], paint: { "fill-color": "#dfe8d3" } });
    layers.push({ id: "basemap-water", type: "fill", source: "basemap", "source-layer": layerName,
      filter: ["==", ["get", "kind"], "water"], paint: { "fill-color": "#c9dbe6" } });
    layers.push({ id: "basemap-buildings", type: "fill", source: "basemap", "source-layer": layerName,
      filter: ["==", ["get", "kind"], "building"], paint: { "fill-color": "#e2ddd3", "fill-outline-color": "#d3ccbf" } });
    layers.push({ id: "basemap-roads", type: "line", source: "basemap", "source-layer": layerName,
      filter: ["==", ["geometry-type"], "LineString"],
      paint: { "line-color": "#ffffff", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5, 19, 12] } });
  }

  /* The zooms (of the MapLibre map, [from, below)) at which a level is tinted: the deepest
     level that grid tiles hold there (levels ≤ 2 below 11, 3 at 11–12, 4 at 13–14, 5 from 15,
     revision 0015's bands), a level's tint starting one zoom after its band does, when its
     shapes are four times fewer in view (a frame's cost grows with the polygons filled). */
  var FILL_ZOOMS = { 1: [0, 11], 2: [0, 12], 3: [12, 14], 4: [14, 16], 5: [16, 24] };

  /* A colour "#rgb" or "#rrggbb" with an alpha, as "rgba(…)" (null: another notation). */
  function withAlpha(color, alpha) {
    var m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(color || ""));
    if (!m) { return null; }
    var h = m[1].length === 3 ? m[1].replace(/(.)/g, "$1$1") : m[1];
    var rgb = [0, 2, 4].map(function (i) { return parseInt(h.slice(i, i + 2), 16); });
    return "rgba(" + rgb.join(",") + "," + alpha + ")";
  }

  /* Where WebGL is drawn in software (no GPU), a level drawn with one-pixel lines (the
     micro-grids) has its outlines drawn by its fill layer (the fill's own one-pixel outline,
     `fill-outline-color`) at the zooms it is tinted, and no line layer there: a line layer
     turns every vertex into a strip of triangles, which costs a software renderer most of a
     repaint at city scale (at the 100k city's opening view the micro-grid lines alone took
     about 480 of 1,010 ms of the GPU process's CPU). Below those zooms, where its shapes are a
     few pixels wide, such a level is not drawn at all in software (its fill layer is kept,
     at opacity 0, so that what lies in view can still be asked for); above them, where a
     deeper level is tinted, its line layer draws it as before. With a GPU nothing changes. */
  var softwareGL = !!(L.GridGovGL && L.GridGovGL.softwareRenderer());
  /* Household dots from few to many households (the legend shows the same three). */
  var HOUSEHOLD_COLORS = ["#90caf9", "#1e88e5", "#0d47a1"];
  GridGov.softwareGL = softwareGL;

  /* How the vector tiles are drawn: "canvas", one MapLibre canvas of the whole view
     (gl_layer.js), where WebGL has a GPU; "tiles", Leaflet tiles drawn one a frame
     (gl_tiles.js), where it is drawn in software. The address may ask for either
     (`/emap?gl=canvas` or `?gl=tiles`), e.g. to compare them. */
  function glMode() {
    var asked = /[?&]gl=(canvas|tiles)(&|$)/.exec(window.location.search);
    if (asked) { return asked[1]; }
    return softwareGL && L.GridGovGLTiles ? "tiles" : "canvas";
  }

  function glStyle() {
    var sources = {}, layers = [];
    Object.keys(TILE_SOURCES).forEach(function (name) {
      sources[name] = { type: "vector", tiles: [tileUrl(name)], minzoom: 0, maxzoom: TILE_SOURCES[name] };
    });
    // A vector basemap (the project's own roads, buildings and water, or a PMTiles file of
    // them), muted; raster basemaps (Tianditu, XYZ, a raster PMTiles) lie under it in Leaflet.
    var bm = GridGov.settings.basemap || { sources: [] };
    var vbase = (bm.sources || []).filter(function (src) { return src.type === "vector"; })[0];
    if (vbase) { basemapLayers(sources, layers, bm, vbase); }
    [1, 2, 3, 4, 5].forEach(function (level) {
      var s = GridGov.levelStyle(level);
      var mine = ["all", ["==", ["get", "level"], level], ["!", ["to-boolean", ["get", "outline"]]]];
      // A level is tinted only at the zooms where it is the deepest the tiles hold (nested
      // tints paint every pixel once a level: on a software-rendered map most of a frame);
      // its outline is drawn at every zoom. No antialiasing pass: the line layer draws the edges.
      var tint = softwareGL && s.weight <= 1 ? withAlpha(s.color, s.fillOpacity) : null;
      var fill = { id: "grids-fill-" + level, type: "fill", source: "grids", "source-layer": "grids", filter: mine,
        minzoom: FILL_ZOOMS[level][0], maxzoom: FILL_ZOOMS[level][1],
        paint: { "fill-color": s.color, "fill-opacity": s.fillOpacity, "fill-antialias": false } };
      if (tint) {
        // The outline takes the fill's opacity: the tint goes into the colour, the opacity is
        // 1 where the level is tinted and 0 (not drawn) below.
        delete fill.minzoom;
        fill.paint = { "fill-color": tint, "fill-opacity": ["step", ["zoom"], 0, FILL_ZOOMS[level][0], 1],
          "fill-antialias": true, "fill-outline-color": s.color };
      }
      layers.push(fill);
      var line = { "line-color": s.color, "line-width": s.weight };
      var dash = ((GridGov.settings.level_styles || {})[level] || {}).dash;
      if (dash && dash.length) { line["line-dasharray"] = dash.map(function (d) { return d / Math.max(s.weight, 1); }); }
      var lines = { id: "grids-line-" + level, type: "line", source: "grids", "source-layer": "grids", filter: mine, paint: line };
      if (tint) { lines.minzoom = FILL_ZOOMS[level][1]; }
      layers.push(lines);
      layers.push({ id: "grids-outline-" + level, type: "line", source: "grids", "source-layer": "grids",
        filter: ["all", ["==", ["get", "level"], level], ["to-boolean", ["get", "outline"]]],
        paint: { "line-color": s.color, "line-width": 2, "line-dasharray": [3, 2] } });
    });
    layers.push({ id: "overrides-fill", type: "fill", source: "overrides", "source-layer": "override_areas",
      paint: { "fill-color": "#6200ea", "fill-opacity": 0.08, "fill-antialias": false } });
    layers.push({ id: "overrides-line", type: "line", source: "overrides", "source-layer": "override_areas",
      paint: { "line-color": "#6200ea", "line-width": 1.5, "line-dasharray": [2, 2] } });
    // Households: density dots (a count per cell) below zoom 16, bare points above. A density
    // tile's cells lie 1/64 of a tile apart, 8 px on the map: a dot is at most that wide, so
    // dots do not cover each other, and the count shows in its colour (light to dark) as much
    // as in its size. Dots as wide as 36 px painted every pixel of a dense street 15-20 times
    // over — a blue blot, and most of a software-rendered repaint.
    layers.push({ id: "households", type: "circle", source: "households", "source-layer": "households",
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["sqrt", ["get", "households"]], 1, 2.5, 3, 3.25, 6, 4],
        "circle-color": ["interpolate", ["linear"], ["sqrt", ["get", "households"]],
          1, HOUSEHOLD_COLORS[0], 3, HOUSEHOLD_COLORS[1], 8, HOUSEHOLD_COLORS[2]],
        "circle-opacity": 0.85
      } });
    layers.push({ id: "cameras", type: "circle", source: "points", "source-layer": "cameras",
      paint: { "circle-radius": 3, "circle-color": "#37474f", "circle-opacity": 0.8 } });
    layers.push({ id: "service_points", type: "circle", source: "points", "source-layer": "service_points",
      paint: { "circle-radius": 6, "circle-color": "#c62828", "circle-stroke-color": "#ffffff", "circle-stroke-width": 2 } });
    // Open cases on top: overdue ones larger and red, the others by status.
    // The colours are the server's (GridGov.settings.case_status_colors / case_overdue_color).
    var colors = GridGov.settings.case_status_colors || {};
    var status = ["match", ["get", "status"]];
    Object.keys(colors).forEach(function (k) { status.push(k, colors[k]); });
    status.push("#757575");
    layers.push({ id: "cases", type: "circle", source: "cases", "source-layer": "cases", minzoom: 11,
      paint: {
        "circle-radius": ["case", ["to-boolean", ["get", "overdue"]], 8, 6],
        "circle-color": ["case", ["to-boolean", ["get", "overdue"]], GridGov.settings.case_overdue_color, status],
        "circle-stroke-color": "#ffffff", "circle-stroke-width": 2, "circle-opacity": 0.95
      } });
    return { version: 8, sources: sources, layers: layers };
  }

  /* A Leaflet layer standing for some MapLibre layers: adding it to the map (the layer list, or
     a script) shows them, removing it hides them. */
  /* Whether MapLibre has read the style (its layers can be shown, hidden and queried), tiles
     loading or not. */
  function styleRead(gl) {
    return !!(gl && gl.style && gl.style._loaded);
  }

  var GlToggle = L.Layer.extend({
    initialize: function (ids, namesFollow) { this.ids = ids; this.namesFollow = namesFollow; },
    onAdd: function () { this._apply("visible"); if (this.namesFollow) { labelsSoon(); } },
    onRemove: function () { this._apply("none"); if (this.namesFollow) { labelsSoon(); } },
    _apply: function (vis) {
      var gl = GridGov.gl, ids = this.ids, self = this;
      if (!gl) { return; }
      this._wanted = vis;
      // What is shown is what was last asked for, when it is applied: a toggle waiting for the
      // style must not undo a later one (added while the page loads, removed once the style
      // was read, then shown again by the "load" event of a slow first render).
      var run = function () {
        ids.forEach(function (id) { if (gl.getLayer(id)) { gl.setLayoutProperty(id, "visibility", self._wanted); } });
      };
      // The style's layers exist once its JSON is read; MapLibre's isStyleLoaded() is false
      // also while any tile loads, long after its one "load" event: a toggle then waited for
      // an event that had passed, and the layer stayed as it was.
      if (styleRead(gl)) { run(); } else if (!this._waiting) {
        this._waiting = true;
        gl.once("load", function () { self._waiting = false; run(); });
      }
    }
  });

  var pendingIdle = [];
  /* Resolves once MapLibre has loaded and drawn every tile in view: on its "idle" event, or
     when a look every 100 ms finds every tile in (a reload of a source does not always end in
     an "idle" event). */
  GridGov.tilesIdle = function () {
    return new Promise(function (resolve) {
      var gl = GridGov.gl;
      if (!gl) { resolve(); return; }
      var done = false, ticks = 0, timer = null;
      var finish = function () {
        if (done) { return; }
        done = true;
        clearInterval(timer);
        resolve();
      };
      pendingIdle.push(finish);
      timer = setInterval(function () {
        ticks += 1;
        if (ticks > 2 && gl.loaded() && gl.areTilesLoaded() && !gl.isMoving()) { finish(); }
      }, 100);
      gl.triggerRepaint();
    }).then(function () {
      // Drawn as Leaflet tiles: once every tile in view is drawn too.
      var tiles = GridGov.layers.glTiles;
      return tiles && GridGov.map && GridGov.map.hasLayer(tiles) ? tiles.whenPainted() : null;
    });
  };

  /* Ask for every tile again (after an edit, a split, a merge, an undo or a division). */
  GridGov.refreshTiles = function () {
    var gl = GridGov.gl;
    tileVersion += 1;
    document.documentElement.setAttribute("data-tiles-version", String(tileVersion));
    if (!gl) { return Promise.resolve(); }
    Object.keys(TILE_SOURCES).forEach(function (name) {
      if (name === "basemap") { return; }
      var src = gl.getSource(name);
      if (src && src.setTiles) { src.setTiles([tileUrl(name)]); }
    });
    if (GridGov.layers.glTiles) { GridGov.layers.glTiles.restyle(); }
    return GridGov.tilesIdle();
  };

  /* Ids of the grids MapLibre draws in view (of a level, or all). */
  GridGov.renderedGrids = function (level) {
    var gl = GridGov.gl;
    var ids = [];
    [1, 2, 3, 4, 5].forEach(function (l) {
      if (level && l !== level) { return; }
      if (!gl.getLayer("grids-line-" + l)) { return; }
      gl.queryRenderedFeatures({ layers: ["grids-line-" + l, "grids-fill-" + l] }).forEach(function (f) {
        if (ids.indexOf(f.id) < 0) { ids.push(f.id); }
      });
    });
    return ids;
  };

  /* The open cases MapLibre draws in view (their tile properties: id, code, status, overdue …). */
  GridGov.renderedCases = function () {
    var gl = GridGov.gl;
    if (!gl || !gl.getLayer("cases")) { return []; }
    return gl.queryRenderedFeatures({ layers: ["cases"] }).map(function (f) { return f.properties; });
  };

  /* ---------------------------------------------------------------- labels from the server */

  var labelSeq = 0, labelTimer = null;
  /* Names follow the grid levels shown: refresh them once the layer list settles. */
  function labelsSoon() {
    if (!GridGov.map || !GridGov.layers.labels) { return; }
    if (labelTimer) { clearTimeout(labelTimer); }
    labelTimer = setTimeout(function () { labelTimer = null; GridGov.refreshLabels(); }, 0);
  }
  GridGov.refreshLabels = function () {
    var map = GridGov.map, layer = GridGov.layers.labels;
    if (!map || !layer) { return Promise.resolve(); }
    var mine = ++labelSeq;
    var b = map.getBounds();
    var clamp = function (v, lo, hi) { return Math.min(Math.max(v, lo), hi); };
    var bbox = [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90),
      clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)].map(function (v) { return v.toFixed(6); });
    var url = "/api/emap/labels?bbox=" + bbox.join(",") + "&zoom=" + map.getZoom() + "&max_level=" + deepestShown();
    return window.GridGovApi.request("GET", url)
      .then(function (res) { return res.ok ? res.body : { labels: [] }; })
      .then(function (body) {
        if (mine !== labelSeq) { return null; }
        // The names already on the map that stay are kept; the others go, the new ones come a
        // batch a frame: replacing several hundred names at once held a frame 100 ms and more.
        var wanted = {};
        body.labels.forEach(function (lb) { wanted[labelKey(lb)] = lb; });
        layer.eachLayer(function (m) {
          if (wanted[m.labelKey]) { delete wanted[m.labelKey]; } else { layer.removeLayer(m); }
        });
        return addLabels(layer, wanted, mine);
      })
      .then(function () {
        if (mine === labelSeq) { document.documentElement.setAttribute("data-labels-seq", String(mine)); }
      });
  };

  function labelKey(lb) {
    return [lb.grid_id, lb.level, lb.name, lb.lat, lb.lon].join("|");
  }

  var LABELS_A_FRAME = 60;
  /* Put names on the map ({key: label}), a batch a frame; stops when a newer set of names is
     asked for. */
  function addLabels(layer, labels, mine) {
    var keys = Object.keys(labels);
    return new Promise(function (resolve) {
      var k = 0;
      var batch = function () {
        if (mine !== labelSeq) { resolve(); return; }
        keys.slice(k, k + LABELS_A_FRAME).forEach(function (key) {
          var lb = labels[key], marker = GridGov.labelMarker(lb, [lb.lat, lb.lon]);
          marker.labelKey = key;
          layer.addLayer(marker);
        });
        k += LABELS_A_FRAME;
        if (k < keys.length) { L.Util.requestAnimFrame(batch); } else { resolve(); }
      };
      batch();
    });
  }

  /* After an edit: new tiles and new names. */
  GridGov.refreshMap = function () {
    GridGov.forgetGridInfo();
    return Promise.all([GridGov.refreshTiles(), GridGov.refreshLabels()]);
  };

  /* ---------------------------------------------------------------- picking a grid */

  /* The deepest grid level shown: the levels ticked in the layer list. */
  function deepestShown() {
    var deepest = 0;
    [1, 2, 3, 4, 5].forEach(function (l) {
      var t = GridGov.layers["grids_level_" + l];
      if (t && GridGov.map.hasLayer(t)) { deepest = l; }
    });
    return deepest;
  }

  /* The grid at a place, as the server picks it (the deepest level drawn at this zoom). */
  GridGov.pickAt = function (latlng) {
    var map = GridGov.map;
    var deepest = deepestShown();
    if (!deepest) { return Promise.resolve(null); }
    var url = "/api/emap/pick?lon=" + latlng.lng + "&lat=" + latlng.lat + "&zoom=" + map.getZoom() +
      "&max_level=" + deepest;
    return window.GridGovApi.request("GET", url)
      .then(function (res) { return res.ok ? res.body : { features: [] }; })
      .then(function (fc) { return fc.features[0] || null; });
  };

  /* What a click on a grid does unless a tool takes it: the notice board (an outline, shown
     for orientation, gives its name and code only). */
  GridGov.openGrid = function (feature) {
    var p = feature.properties;
    if (p.outline) {
      var box = el("section", "gg-outline");
      box.setAttribute("data-grid-id", String(p.id));
      box.appendChild(el("h2", null, "上级网格"));
      box.appendChild(tipRows([["名称", p.name], ["编码", p.code]]));
      GridGov.panelElement(box);
      return Promise.resolve();
    }
    return GridGov.showNoticeBoard(p.id);
  };

  /* The name, code and household count of a grid drawn from a dense tile (which carries ids
     only), fetched once the pointer has rested on it for a moment; null until then. */
  var gridInfoCache = {}, gridInfoOrder = [], gridInfoWanted = null, gridInfoTimer = null;
  function gridInfo(id) {
    if (Object.prototype.hasOwnProperty.call(gridInfoCache, id)) { return gridInfoCache[id]; }
    if (gridInfoWanted === id) { return null; }
    gridInfoWanted = id;
    if (gridInfoTimer) { clearTimeout(gridInfoTimer); }
    gridInfoTimer = setTimeout(function () {
      gridInfoTimer = null;
      window.GridGovApi.request("GET", "/api/grids/" + encodeURIComponent(id)).then(function (res) {
        if (!res.ok) { return; }
        var p = res.body.properties;
        gridInfoCache[id] = { name: p.name, code: p.code, household_count: p.household_count };
        gridInfoOrder.push(id);
        if (gridInfoOrder.length > 500) { delete gridInfoCache[gridInfoOrder.shift()]; }
        if (gridInfoWanted === id) { gridInfoWanted = null; GridGov.redrawTip(); }
      });
    }, 120);
    return null;
  }
  GridGov.gridInfo = gridInfo;
  /* After an edit the names held may be stale. */
  GridGov.forgetGridInfo = function () { gridInfoCache = {}; gridInfoOrder = []; gridInfoWanted = null; };
  GridGov.redrawTip = function () {};

  /* Where a place lies on MapLibre's canvas (its pixels, for queryRenderedFeatures): the canvas
     is wider than the map by a margin on every side, and while the map moves it keeps the view
     last drawn (gl_layer.js), so a Leaflet container point is not a canvas point. */
  GridGov.glPoint = function (latlng) {
    var p = GridGov.gl.project([latlng.lng, latlng.lat]);
    return { x: p.x, y: p.y };
  };

  /* Hover: what is drawn under the pointer (a Leaflet container point), as a tooltip of text
     rows (null: nothing). */
  GridGov.tipAt = function (point) {
    var gl = GridGov.gl;
    if (!styleRead(gl)) { return null; }
    point = GridGov.glPoint(GridGov.map.containerPointToLatLng(L.point(point.x, point.y)));
    var box = [[point.x - 4, point.y - 4], [point.x + 4, point.y + 4]];
    var wanted = ["cases", "service_points", "cameras", "households"].filter(function (id) {
      return gl.getLayer(id) && gl.getLayoutProperty(id, "visibility") !== "none";
    });
    var found = wanted.length ? gl.queryRenderedFeatures(box, { layers: wanted }) : [];
    var rows = [];
    found.forEach(function (f) {
      var p = f.properties;
      if (f.layer.id === "cases") {
        var names = GridGov.settings.case_status_names || {};
        rows.push(["事件", p.code], ["类型", p.category_name || p.category],
          ["状态", (names[p.status] || p.status) + (p.overdue ? "（超期）" : "")]);
      } else if (f.layer.id === "service_points") {
        rows.push(["阵地", p.name], ["服务半径", Math.round(p.radius_m) + " 米"]);
      } else if (f.layer.id === "cameras") {
        rows.push(["探头", p.code], ["名称", p.name || ""]);
      } else {
        rows.push(["住户", p.households + " 户"]);
      }
    });
    if (!rows.length) {
      var grids = [];
      [5, 4, 3, 2, 1].forEach(function (l) {
        // A level's fill is asked where it is tinted (in software it is kept at opacity 0 below).
        var z = gl.getZoom();
        if (z < FILL_ZOOMS[l][0] || z >= FILL_ZOOMS[l][1]) { return; }
        if (gl.getLayer("grids-fill-" + l) && GridGov.map.hasLayer(GridGov.layers["grids_level_" + l] || {})) {
          grids = grids.concat(gl.queryRenderedFeatures([point.x, point.y], { layers: ["grids-fill-" + l] }));
        }
      });
      if (grids.length) {
        // A dense tile carries a grid's id only (revision 0025): its name, code and count
        // come from the server once the pointer rests on it, and are kept for the next time.
        var g = grids[0].properties.name !== undefined ? grids[0].properties : gridInfo(grids[0].id);
        if (g) {
          rows.push(["名称", g.name], ["编码", g.code], ["户数", g.household_count]);
        } else {
          rows.push(["名称", "加载中…"]);
        }
      }
    }
    return rows.length ? tipRows(rows) : null;
  };

  /* ---------------------------------------------------------------- controls */

  /* A place picker (街道/乡镇, 社区/村) that flies the map to the chosen grid. */
  GridGov.onReady(function (map, layers, config) {
    var places = config.places || [];
    if (!places.length) { return; }
    var Picker = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-picker");
        var select = el("select");
        select.id = "gg-place";
        select.title = "定位到";
        var first = el("option", null, "定位到…");
        first.value = "";
        select.appendChild(first);
        places.forEach(function (p) {
          var o = el("option", null, (p.level > 1 ? "　" : "") + p.name);
          o.value = String(p.id);
          select.appendChild(o);
        });
        div.appendChild(select);
        L.DomEvent.disableClickPropagation(div);
        select.addEventListener("change", function (ev) {
          if (!ev.target.value) { return; }
          window.GridGovApi.call("GET", "/api/grids/" + encodeURIComponent(ev.target.value)).then(function (f) {
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

  /* The legend: a collapsible list of what the symbols mean. */
  function legend(settings) {
    var Legend = L.Control.extend({
      options: { position: "bottomleft" },
      onAdd: function () {
        var box = el("details", "leaflet-bar gg-legend");
        box.appendChild(el("summary", null, "图例"));
        var list = el("ul");
        var names = settings.level_names || {};
        [1, 2, 3, 4, 5].forEach(function (l) {
          var s = (settings.level_styles || {})[l];
          if (!s) { return; }
          var li = el("li");
          var sw = el("i", "gg-swatch gg-swatch-line");
          sw.style.borderColor = s.color;
          sw.style.borderStyle = s.dash && s.dash.length ? "dashed" : "solid";
          li.appendChild(sw);
          li.appendChild(document.createTextNode(names[l] || String(l)));
          list.appendChild(li);
        });
        [[HOUSEHOLD_COLORS, "住户（颜色越深、点越大，户数越多）"], ["#c62828", "党群服务阵地"],
          ["#37474f", "监控探头"], ["#6200ea", "管辖例外区域"]].forEach(function (row) {
          var li = el("li");
          var sw = el("i", "gg-swatch gg-swatch-dot");
          sw.style.background = typeof row[0] === "string" ? row[0]
            : "linear-gradient(90deg, " + row[0].join(", ") + ")";
          li.appendChild(sw);
          li.appendChild(document.createTextNode(row[1]));
          list.appendChild(li);
        });
        box.appendChild(list);
        L.DomEvent.disableClickPropagation(box);
        return box;
      }
    });
    return new Legend();
  }

  /* ---------------------------------------------------------------- building the map */

  function build(settings) {
    var map = L.map("gg-map", { maxZoom: 19, minZoom: 3, zoomControl: true });
    map.createPane(LABEL_PANE).style.zIndex = 590;
    // In software the names are hidden while a zoom animates (emap.css).
    if (softwareGL) { L.DomUtil.addClass(map.getContainer(), "gg-software-gl"); }
    L.control.scale({ imperial: false, metric: true }).addTo(map);
    var base = {}, overlays = {}, layers = {};
    // Raster basemaps (Tianditu, an XYZ server, a raster PMTiles) are Leaflet tile layers under
    // the vector layers; the attribution goes in as text.
    var bm = settings.basemap || { sources: [] };
    (bm.sources || []).filter(function (src) { return src.type === "raster"; }).forEach(function (src) {
      var t = L.tileLayer(absolute(src.tiles[0]), { maxZoom: 19, maxNativeZoom: bm.max_zoom || 18, tileSize: src.tile_size || 256 });
      t.addTo(map);
      if (src.role === "labels") { overlays["底图注记"] = t; } else { base["底图"] = t; }
    });
    if (bm.attribution) {
      var credit = L.control({ position: "bottomright" });
      credit.onAdd = function () { return el("div", "gg-basemap-credit", bm.attribution); };
      credit.addTo(map);
    }
    var h = settings.home;
    if (h) { map.fitBounds([[h[1], h[0]], [h[3], h[2]]], { animate: false }); } else { map.setView([35.0, 105.0], 4, { animate: false }); }

    maplibregl.setWorkerUrl(window.location.origin + settings.worker);
    // fadeDuration 0: a tile that arrives is drawn once, not faded in over 300 ms of repaints.
    // The layer is redrawn only when the view needs it (gl_layer.js), not on every move.
    var glLayer = L.gridGovGL({ style: glStyle(), interactive: false, attributionControl: false, fadeDuration: 0 });
    glLayer.addTo(map);
    var gl = glLayer.getMaplibreMap();
    GridGov.gl = gl;
    layers.tiles = glLayer;
    // In software the map is drawn as Leaflet tiles, one a frame (gl_tiles.js); the MapLibre
    // map of the view stays, undrawn, for what lies where.
    GridGov.glMode = glMode();
    if (GridGov.glMode === "tiles") {
      glLayer.paintless();
      layers.glTiles = L.gridGovGLTiles(gl).addTo(map);
    }
    gl.on("idle", function () { pendingIdle.splice(0).forEach(function (fn) { fn(); }); });
    gl.on("error", function (ev) {
      // A tile that failed (e.g. cancelled while moving) is asked for again on the next view.
      if (window.console) { window.console.warn("map:", ev && ev.error && ev.error.message); }
    });

    var names = settings.level_names || {};
    [1, 2, 3, 4, 5].forEach(function (level) {
      var t = new GlToggle(["grids-fill-" + level, "grids-line-" + level, "grids-outline-" + level], true);
      t.addTo(map);
      layers["grids_level_" + level] = t;
      overlays[names[level] || String(level)] = t;
    });
    var labels = L.featureGroup();
    labels.addTo(map);
    layers.labels = labels;
    overlays["网格名称标注"] = labels;
    [["households", ["households"], "住户"], ["service_points", ["service_points"], "党群服务阵地"],
      ["cameras", ["cameras"], "监控探头"], ["overrides", ["overrides-fill", "overrides-line"], "管辖例外区域"],
      ["cases", ["cases"], "未结事件"]]
      .forEach(function (row) {
        var t = new GlToggle(row[1]);
        t.addTo(map);
        layers[row[0]] = t;
        overlays[row[2]] = t;
      });

    var circles = L.geoJSON(null, {
      style: function () { return { color: "#c62828", weight: 1, fillColor: "#c62828", fillOpacity: 0.05 }; },
      interactive: false
    }).addTo(map);
    layers.service_circles = circles;
    overlays["服务圈（按服务半径）"] = circles;
    GridGov.refreshCircles = function () {
      return window.GridGovApi.request("GET", "/api/coverage/circles")
        .then(function (res) { return res.ok ? res.body : null; })
        .then(function (fc) {
          circles.clearLayers();
          if (fc) { circles.addData(fc); }
        });
    };
    if (settings.role !== "department") { GridGov.refreshCircles(); }  // households' circles: field staff

    L.control.layers(base, overlays, { collapsed: true }).addTo(map);
    /* The wheel over a panel or tool scrolls that panel; it never zooms the map. */
    var controls = map.getContainer().querySelector(".leaflet-control-container");
    if (controls) { L.DomEvent.disableScrollPropagation(controls); }
    legend(settings).addTo(map);

    /* A click: the server picks the grid under it; a tool may take it, else its notice board. */
    map.on("click", function (e) {
      if (map.pm && map.pm.globalDrawModeEnabled()) { return; }  // drawing: the click is a vertex
      GridGov.pickAt(e.latlng).then(function (feature) {
        if (!feature) { return; }
        if (GridGov.clickHandlers.some(function (hd) { return hd(feature, null, e) === false; })) { return; }
        GridGov.openGrid(feature);
      });
    });
    /* Hover: a tooltip of what is under the pointer, read from the drawn tiles. */
    var hover = L.tooltip({ direction: "top", offset: [0, -8], className: "gg-hover" });
    var hoverAt = null, hoverLast = null;
    var showTip = function (ev) {
      var tip = GridGov.tipAt(ev.containerPoint);
      if (!tip) { if (map.hasLayer(hover)) { map.closeTooltip(hover); } return; }
      hover.setContent(tip).setLatLng(ev.latlng);
      if (!map.hasLayer(hover)) { map.openTooltip(hover); }
    };
    // A grid's name fetched for the tooltip: show it where the pointer still is.
    GridGov.redrawTip = function () { if (hoverLast && map.hasLayer(hover)) { showTip(hoverLast); } };
    map.on("mousemove", function (e) {
      hoverLast = e;
      if (hoverAt) { return; }
      hoverAt = e;
      L.Util.requestAnimFrame(function () {
        var ev = hoverAt;
        hoverAt = null;
        showTip(ev);
      });
    });
    map.on("mouseout", function () { hoverLast = null; if (map.hasLayer(hover)) { map.closeTooltip(hover); } });
    map.on("moveend", function () { GridGov.refreshLabels(); });

    GridGov.ready(map, layers, { level_names: names, places: settings.places || [] });
    GridGov.refreshLabels();
  }

  function start() {
    var close = document.getElementById("gg-panel-close");
    if (close) { close.addEventListener("click", function () { document.getElementById("gg-panel").hidden = true; }); }
    var node = document.getElementById("gg-emap-settings");
    if (!node || !document.getElementById("gg-map")) { return; }
    var settings = JSON.parse(node.textContent);
    GridGov.settings = settings;
    try {
      build(settings);
    } catch (err) {
      var msg = el("p", "gg-error", "地图加载失败：" + (err.message || String(err)));
      document.getElementById("gg-panel-body").appendChild(msg);
      document.getElementById("gg-panel").hidden = false;
      throw err;
    }
  }

  window.GridGov = GridGov;
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
