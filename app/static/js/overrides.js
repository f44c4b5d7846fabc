/* Override areas (管辖例外区域) on the e-map: the places whose cases of one category go to a
 * department or a named worker instead of the micro-grid's owner (a main road kept by the
 * city-management squad, a market by the market-supervision office …).
 *
 * Staff choose a category, see its areas, draw a new one with Leaflet-Geoman, drag its vertices,
 * rename it, change its keeper or delete it. Everything is checked by the server
 * (/api/override-areas); its 4xx answers are shown in the panel, and a place it names is marked
 * on the map. Edits carry the version they started from, so a concurrent edit is refused (409).
 */
(function () {
  "use strict";
  var O = {
    on: false,
    map: null,
    layer: null,        // L.GeoJSON of the areas of the chosen category
    category: "",       // code of the chosen case category
    categories: [],     // from /api/case-categories
    keepers: null,      // {departments, workers} from /api/override-areas/keepers
    mode: null,         // null | "draw" | "drawn" | "edit" | "delete"
    drawn: null,        // layer being drawn (a new area)
    editing: null,      // {feature, layer} of the area whose vertices are being edited
    marks: null,        // error place
    seq: 0
  };
  var esc = function (s) { return GridGov.escape(s); };
  var STATUS_TEXT = {
    400: "请求有误", 404: "区域不存在（可能已被删除）", 409: "区域已被他人修改", 413: "数据过大", 422: "数据校验未通过"
  };
  var STYLE = { color: "#e65100", weight: 3, dashArray: "6 3", fillColor: "#ff9800", fillOpacity: 0.2 };

  var api = window.GridGovApi.request;  // answers {ok, status, body}

  function done(what) {
    O.seq += 1;
    document.documentElement.setAttribute("data-ov-done", what + "-" + O.seq);
  }

  /* ---------------------------------------------------------------- messages */

  function say(html) {
    var el = document.getElementById("gg-ov-msg");
    if (el) { el.innerHTML = html; }
  }

  function clearMarks() {
    if (O.marks) { O.map.removeLayer(O.marks); O.marks = null; }
  }

  function sayError(res, doing) {
    var err = (res.body && res.body.error) || {};
    var head = (doing || "操作") + "失败" + (STATUS_TEXT[res.status] ? "（" + STATUS_TEXT[res.status] + "）" : "");
    var extra = err.current_version ? "当前版本为 " + esc(err.current_version) + "，请重新加载后再改。" : "";
    say('<p class="gg-error" id="gg-ov-error">' + esc(head) + "：" +
      esc(err.message || ("请求失败（" + res.status + "）")) + (extra ? "<br>" + extra : "") + "</p>");
    clearMarks();
    O.marks = window.GridGovApi.errorLayer(err);
    if (O.marks) { O.marks.addTo(O.map); }
    done("error");
  }

  /* ---------------------------------------------------------------- areas on the map */

  function categoryName(code) {
    var c = O.categories.filter(function (x) { return x.code === code; })[0];
    return c ? c.name : code;
  }

  function findLayer(id) {
    var found = null;
    if (O.layer) { O.layer.eachLayer(function (l) { if (l.feature && l.feature.id === id) { found = l; } }); }
    return found;
  }

  function loadAreas() {
    if (!O.layer) {
      O.layer = L.geoJSON(null, {
        renderer: L.svg(),
        style: STYLE,
        onEachFeature: function (f, l) {
          l.options.snapIgnore = true;
          l.bindTooltip(esc(f.properties.name) + "：" + esc(f.properties.keeper || ""), { sticky: true });
        }
      });
    }
    O.layer.clearLayers();
    if (!O.map.hasLayer(O.layer)) { O.layer.addTo(O.map); }
    if (!O.category) { renderList([]); return Promise.resolve(); }
    return api("GET", "/api/override-areas?category=" + encodeURIComponent(O.category)).then(function (res) {
      if (!res.ok) { sayError(res, "加载"); return; }
      O.layer.addData(res.body);
      renderList(res.body.features);
      done("loaded");
    });
  }

  function renderList(features) {
    var list = document.getElementById("gg-ov-list");
    if (!list) { return; }
    if (!O.category) { list.innerHTML = '<p class="gg-hint">先选择事件类别。</p>'; return; }
    if (!features.length) { list.innerHTML = '<p class="gg-hint">该类别暂无例外区域。</p>'; return; }
    list.innerHTML = '<table class="gg-result gg-ov-table"><thead><tr><th>名称</th><th>责任方</th><th>公顷</th><th></th></tr></thead><tbody>' +
      features.map(function (f) {
        var p = f.properties;
        return '<tr data-area-id="' + esc(f.id) + '" data-version="' + esc(p.version) + '"><td>' + esc(p.name) +
          "</td><td>" + esc(p.keeper) + "</td><td>" + (p.area_m2 / 10000).toFixed(2) + "</td><td>" +
          '<button data-ov-act="show" data-id="' + esc(f.id) + '" title="在地图上显示">查看</button>' +
          '<button class="gg-ov-edit" data-ov-act="edit" data-id="' + esc(f.id) + '">编辑</button>' +
          '<button class="gg-ov-delete" data-ov-act="delete" data-id="' + esc(f.id) + '">删除</button></td></tr>';
      }).join("") + "</tbody></table>";
  }

  /* ---------------------------------------------------------------- the panel */

  function keeperFields(p) {
    p = p || {};
    var k = O.keepers || { departments: [], workers: [] };
    var isWorker = !!p.worker_id;
    var deps = k.departments.map(function (d) {
      return '<option value="' + esc(d.id) + '"' + (d.id === p.department_id ? " selected" : "") + ">" + esc(d.name) + "</option>";
    }).join("");
    var worker = "";
    if (isWorker) {
      var w = k.workers.filter(function (x) { return x.id === p.worker_id; })[0];
      worker = w ? (w.code || w.id) + " " + w.name : "";
    }
    return '<div class="gg-ov-form">' +
      '<label>名称 <input id="gg-ov-name" value="' + esc(p.name || "") + '" placeholder="如：长江路（主干道）"></label>' +
      '<label>责任方 <select id="gg-ov-kind"><option value="department"' + (isWorker ? "" : " selected") +
      '>职能部门</option><option value="worker"' + (isWorker ? " selected" : "") + ">责任人</option></select></label>" +
      '<label class="gg-ov-dept"' + (isWorker ? " hidden" : "") + '>部门 <select id="gg-ov-dept">' + deps + "</select></label>" +
      '<label class="gg-ov-worker"' + (isWorker ? "" : " hidden") + '>人员 <input id="gg-ov-worker" list="gg-ov-workers" value="' +
      esc(worker) + '" placeholder="工号或姓名"></label>' +
      "</div>";
  }

  function readForm() {
    var props = { name: (document.getElementById("gg-ov-name").value || "").trim() };
    if (document.getElementById("gg-ov-kind").value === "worker") {
      var text = (document.getElementById("gg-ov-worker").value || "").trim();
      var code = text.split(/\s+/)[0];
      var k = O.keepers || { workers: [] };
      var w = k.workers.filter(function (x) { return x.code === code || x.name === text || String(x.id) === code; })[0];
      // An unknown worker goes to the server as typed, which names what does not exist.
      if (w) { props.worker_id = w.id; } else { props.worker_code = code; }
    } else {
      props.department_id = Number(document.getElementById("gg-ov-dept").value) || null;
      props.worker_id = null;
    }
    return props;
  }

  function render() {
    var opts = '<option value="">请选择…</option>' + O.categories.map(function (c) {
      return '<option value="' + esc(c.code) + '"' + (c.code === O.category ? " selected" : "") + ">" + esc(c.name) + "</option>";
    }).join("");
    var workers = ((O.keepers && O.keepers.workers) || []).map(function (w) {
      return '<option value="' + esc((w.code || w.id) + " " + w.name) + '"></option>';
    }).join("");
    GridGov.panel('<section class="gg-ov"><h2>管辖例外区域</h2>' +
      '<p class="gg-hint">区域内该类别的事件由指定部门或责任人处置，优先于微网格员。</p>' +
      '<label class="gg-ov-cat">事件类别 <select id="gg-ov-category">' + opts + "</select></label>" +
      '<div class="gg-ov-tools"><button id="gg-ov-new" data-ov-act="new"' + (O.category ? "" : " disabled") +
      ">绘制新区域</button></div>" +
      '<div id="gg-ov-work"></div><div id="gg-ov-msg"></div><div id="gg-ov-list"></div>' +
      '<datalist id="gg-ov-workers">' + workers + "</datalist></section>");
  }

  function work(html) {
    var el = document.getElementById("gg-ov-work");
    if (el) { el.innerHTML = html; }
  }

  /* ---------------------------------------------------------------- drawing and editing */

  function stopWork() {
    if (O.map.pm.globalDrawModeEnabled()) { O.map.pm.disableDraw(); }
    if (O.drawn) { O.map.removeLayer(O.drawn); O.drawn = null; }
    if (O.editing) {
      O.editing.layer.pm.disable();
      O.map.removeLayer(O.editing.layer);
      var shown = findLayer(O.editing.feature.id);
      if (shown) { shown.setStyle({ opacity: 1, fillOpacity: STYLE.fillOpacity }); }
      O.editing = null;
    }
    O.mode = null;
    work("");
  }

  function startNew() {
    stopWork();
    clearMarks();
    say("");
    O.mode = "draw";
    work("<h3>新区域（" + esc(categoryName(O.category)) + "）</h3>" + keeperFields() +
      "<p>在地图上依次点击顶点，点击第一个顶点或按回车闭合。</p>" +
      '<button id="gg-ov-save" data-ov-act="save" disabled>保存</button> <button data-ov-act="cancel">取消</button>');
    O.map.pm.enableDraw("Polygon", {
      snappable: true,
      snapDistance: 10,
      allowSelfIntersection: false,
      finishOn: null,
      templineStyle: { color: "#e65100" },
      hintlineStyle: { color: "#e65100", dashArray: "5 5" },
      pathOptions: STYLE
    });
  }

  function onCreate(ev) {
    if (O.mode !== "draw") { return; }
    // The grid editor listens for every drawn shape too; this one is ours.
    if (GridGov.edit && GridGov.edit.drawn === ev.layer) { GridGov.edit.drawn = null; }
    O.drawn = ev.layer;
    O.mode = "drawn";
    ev.layer.options.snapIgnore = true;
    ev.layer.pm.enable({ allowSelfIntersection: false });  // still adjustable before saving
    var save = document.getElementById("gg-ov-save");
    if (save) { save.disabled = false; }
    done("drawn");
  }

  function saveNew() {
    if (!O.drawn) { return; }
    var props = Object.assign(readForm(), { category: O.category });
    say("<p>正在保存… / saving…</p>");
    api("POST", "/api/override-areas", {
      type: "Feature", geometry: O.drawn.toGeoJSON(false).geometry, properties: props
    }).then(function (res) {
      if (!res.ok) { sayError(res, "保存"); return; }
      stopWork();
      clearMarks();
      say('<p class="gg-ok" id="gg-ov-saved" data-area-id="' + esc(res.body.id) + '">已保存：' +
        esc(res.body.properties.name) + "（责任方 " + esc(res.body.properties.keeper) + "，版本 " +
        esc(res.body.properties.version) + "）</p>");
      GridGov.refreshTiles();  // the areas on the map's tiles too
      return loadAreas().then(function () { done("saved"); });
    });
  }

  function startEdit(id) {
    var shown = findLayer(id);
    if (!shown) { return; }
    stopWork();
    clearMarks();
    say("");
    var feature = shown.feature;
    var layer = L.geoJSON(feature, { renderer: L.svg(), style: { color: "#d81b60", weight: 3, fillOpacity: 0.1 } }).getLayers()[0];
    layer.options.snapIgnore = true;
    layer.addTo(O.map);
    layer.pm.enable({ snappable: true, snapDistance: 10, allowSelfIntersection: false });
    shown.setStyle({ opacity: 0.2, fillOpacity: 0.02 });
    O.editing = { feature: feature, layer: layer };
    O.mode = "edit";
    work('<h3 id="gg-ov-editing" data-area-id="' + esc(id) + '">编辑：' + esc(feature.properties.name) +
      "（版本 " + esc(feature.properties.version) + "）</h3>" + keeperFields(feature.properties) +
      "<p>拖动顶点修改边界（拖动边中点可加点，右键顶点可删点）。</p>" +
      '<button id="gg-ov-update" data-ov-act="update">保存修改</button> <button data-ov-act="cancel">取消</button>');
    done("editing");
  }

  function saveEdit() {
    var ed = O.editing;
    if (!ed) { return; }
    var props = Object.assign(readForm(), { version: ed.feature.properties.version });
    say("<p>正在保存… / saving…</p>");
    api("PUT", "/api/override-areas/" + ed.feature.id, {
      type: "Feature", geometry: ed.layer.toGeoJSON(false).geometry, properties: props
    }).then(function (res) {
      if (!res.ok) {
        sayError(res, "保存修改");
        if (res.status === 409 || res.status === 404) {
          say(document.getElementById("gg-ov-msg").innerHTML +
            '<button id="gg-ov-reload" data-ov-act="reload">重新加载区域</button>');
        }
        return;
      }
      stopWork();
      clearMarks();
      say('<p class="gg-ok" id="gg-ov-saved" data-area-id="' + esc(res.body.id) + '">已保存修改：' +
        esc(res.body.properties.name) + "（版本 " + esc(res.body.properties.version) + "）</p>");
      GridGov.refreshTiles();  // the areas on the map's tiles too
      return loadAreas().then(function () { done("updated"); });
    });
  }

  function askDelete(id) {
    var shown = findLayer(id);
    if (!shown) { return; }
    stopWork();
    O.mode = "delete";
    O.deleting = shown.feature;
    work('<p class="gg-ov-ask">删除区域“' + esc(shown.feature.properties.name) + "”？删除后该区域内的事件重新由微网格员处置。</p>" +
      '<button id="gg-ov-confirm-delete" data-ov-act="confirm-delete">确认删除</button> <button data-ov-act="cancel">取消</button>');
  }

  function confirmDelete() {
    var f = O.deleting;
    if (!f) { return; }
    api("DELETE", "/api/override-areas/" + f.id).then(function (res) {
      if (!res.ok) { sayError(res, "删除"); return; }
      O.deleting = null;
      stopWork();
      say('<p class="gg-ok" id="gg-ov-deleted" data-area-id="' + esc(f.id) + '">已删除：' + esc(f.properties.name) + "</p>");
      GridGov.refreshTiles();  // the areas on the map's tiles too
      return loadAreas().then(function () { done("deleted"); });
    });
  }

  function show(id) {
    var l = findLayer(id);
    if (l) { O.map.fitBounds(l.getBounds().pad(0.3), { maxZoom: 18 }); }
  }

  var ACTIONS = {
    "new": startNew, save: saveNew, update: saveEdit, "confirm-delete": confirmDelete,
    cancel: function () { stopWork(); clearMarks(); say(""); },
    reload: function () { stopWork(); clearMarks(); say(""); loadAreas(); }
  };

  /* ---------------------------------------------------------------- on and off */

  function setOn(on) {
    O.on = on;
    var button = document.getElementById("gg-ov-toggle");
    if (button) { button.classList.toggle("gg-on", on); }
    document.documentElement.setAttribute("data-ov-mode", on ? "1" : "0");
    if (!on) {
      stopWork();
      clearMarks();
      if (O.layer) { O.map.removeLayer(O.layer); }
      document.getElementById("gg-panel").hidden = true;
      return;
    }
    var need = [];
    if (!O.categories.length) {
      need.push(api("GET", "/api/case-categories").then(function (res) {
        if (res.ok) { O.categories = res.body; }
      }));
    }
    if (!O.keepers) {
      need.push(api("GET", "/api/override-areas/keepers").then(function (res) {
        if (res.ok) { O.keepers = res.body; }
      }));
    }
    Promise.all(need).then(function () {
      render();
      return loadAreas();
    }).then(function () { done("ready"); });
  }

  function onGridClick() {
    // While drawing or dragging vertices the click belongs to Geoman, not the notice board.
    if (O.on && (O.mode === "draw" || O.mode === "drawn" || O.mode === "edit")) { return false; }
    return true;
  }

  GridGov.onReady(function (map) {
    O.map = map;
    if (!map.pm) { return; }  // Leaflet-Geoman did not load: no drawing tool
    GridGov.clickHandlers.unshift(onGridClick);
    map.on("pm:create", onCreate);
    var Toggle = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-ov-toggle");
        div.innerHTML = '<button id="gg-ov-toggle" type="button" title="绘制、修改、删除按类别的例外管辖区域（override areas）">管辖例外区域</button>';
        L.DomEvent.disableClickPropagation(div);
        div.querySelector("button").addEventListener("click", function () { setOn(!O.on); });
        return div;
      }
    });
    map.addControl(new Toggle());
    var body = document.getElementById("gg-panel-body");
    body.addEventListener("click", function (ev) {
      var target = ev.target.closest("[data-ov-act]");
      if (!target || !O.on) { return; }
      var act = target.getAttribute("data-ov-act");
      var id = Number(target.getAttribute("data-id"));
      if (act === "edit") { startEdit(id); } else if (act === "delete") { askDelete(id); } else if (act === "show") { show(id); } else if (ACTIONS[act]) { ACTIONS[act](); }
    });
    body.addEventListener("change", function (ev) {
      if (!O.on) { return; }
      if (ev.target.id === "gg-ov-category") {
        O.category = ev.target.value;
        stopWork();
        clearMarks();
        say("");
        var btn = document.getElementById("gg-ov-new");
        if (btn) { btn.disabled = !O.category; }
        loadAreas();
      } else if (ev.target.id === "gg-ov-kind") {
        var worker = ev.target.value === "worker";
        document.querySelector(".gg-ov-dept").hidden = worker;
        document.querySelector(".gg-ov-worker").hidden = !worker;
      }
    });
  });
  GridGov.overrides = O;
})();
