/* E-map edit mode (编辑模式): draw, reshape, split, merge and delete grids with Leaflet-Geoman.
 *
 * The browser is never trusted: every drawing goes to the server, first as a dry run whose
 * result (parts, household counts, what moves) is shown on the map, and is saved only when the
 * user confirms. Errors come back with a place, which is drawn on the map. Coordinates are sent
 * unrounded (toGeoJSON(false)); snapping follows neighbouring boundaries and the parent's edge.
 */
(function () {
  "use strict";
  var E = {
    on: false,
    mode: null,          // null | "draw-child" | "reshape" | "split" | "merge"
    selected: null,      // GeoJSON Feature of the selected grid
    mergeSet: [],        // Features chosen for a merge
    pending: null,       // {method, url, body, version, label} of the previewed edit
    drawn: null,         // the layer being drawn or edited
    preview: null,       // layer showing a dry-run result
    marks: null,         // layer showing errors and integrity issues
    context: null,       // the selected grid and its siblings, fetched
    contextSeq: 0,
    map: null
  };
  var esc = function (s) { return GridGov.escape(s); };
  var PART_COLORS = ["#d81b60", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00897b"];
  var MOVE_NAMES = { household: "住户", camera: "探头", service_point: "服务阵地", "case": "未结事件", child: "下级网格" };

  /* An API call answering {ok, status, body} (core.js); ``version`` goes as If-Match. */
  function api(method, url, body, version) {
    var headers = version !== undefined && version !== null ? { "If-Match": '"' + version + '"' } : undefined;
    return window.GridGovApi.request(method, url, body, headers);
  }

  /* ---------------------------------------------------------------- the grids being edited */

  /* The map itself is drawn from tiles; the edit mode works on what it fetches: the selected
     grid and its siblings (/api/grids?parent=…), drawn as outlines that drawings snap to. */
  function showContext(feature) {
    clearLayer("context");
    if (!feature) { return Promise.resolve(); }
    var p = feature.properties;
    var mine = ++E.contextSeq;
    var url = p.parent_id ? "/api/grids?parent=" + encodeURIComponent(p.parent_id) : null;
    var load = url ? api("GET", url).then(function (res) { return res.ok ? res.body.features : [feature]; }) :
      Promise.resolve([feature]);
    return load.then(function (features) {
      if (mine !== E.contextSeq || !E.on) { return; }
      clearLayer("context");
      E.context = L.geoJSON({ type: "FeatureCollection", features: features }, {
        renderer: L.svg(),
        interactive: false,
        style: function (f) {
          var chosen = f.properties.id === (E.selected && E.selected.properties.id);
          return GridGov.levelStyle(f.properties.level, { fillOpacity: chosen ? 0.12 : 0, weight: chosen ? 3 : 2, dashArray: null });
        }
      }).addTo(E.map);
    });
  }

  function select(feature) {
    E.selected = feature;
    render();
    return showContext(feature);
  }

  /* After a save or an undo: new tiles, new names, the siblings again. */
  function refreshAfterEdit() {
    return Promise.all([GridGov.refreshMap(), showContext(E.selected)]);
  }

  function clearLayer(name) {
    if (E[name]) { E.map.removeLayer(E[name]); E[name] = null; }
  }

  function stopDrawing() {
    if (E.map.pm.globalDrawModeEnabled()) { E.map.pm.disableDraw(); }
    if (E.drawn) {
      if (E.drawn.pm && E.drawn.pm.enabled && E.drawn.pm.enabled()) { E.drawn.pm.disable(); }
      E.map.removeLayer(E.drawn);
      E.drawn = null;
    }
  }

  function reset() {
    stopDrawing();
    clearLayer("preview");
    E.pending = null;
    E.mode = null;
  }

  function showPlace(error) {
    clearLayer("marks");
    if (!error || !error.location) { return; }
    E.marks = window.GridGovApi.errorLayer(error).addTo(E.map);
    var b = E.marks.getBounds();
    if (b.isValid() && !E.map.getBounds().contains(b)) { E.map.fitBounds(b.pad(0.5), { maxZoom: 18 }); }
  }

  /* ---------------------------------------------------------------- panel */

  function render(extra) {
    var s = E.selected;
    // The signed-in account acts (the server records it); there is nobody to name here.
    var html = '<section class="gg-edit"><h2>编辑模式 · 网格边界</h2>';
    if (!s) {
      html += '<p class="gg-hint">在地图上点击一个网格以选中它。</p>';
    } else {
      var p = s.properties;
      html += '<div class="gg-selected" data-grid-id="' + esc(p.id) + '"><b>已选：' + esc(p.name) + "</b><br>" +
        "编码 " + esc(p.code) + " · " + esc(p.level_name || ("第" + p.level + "级")) + " · 户数 " +
        '<span class="gg-count">' + esc(p.household_count) + "</span> · 版本 " + esc(p.version) + "</div>" +
        '<div class="gg-rename"><input id="gg-rename" value="' + esc(p.name) + '"> <button data-act="rename">改名</button></div>' +
        '<div class="gg-tools">' +
        '<button id="gg-draw-child" data-act="draw-child">新建下级网格</button>' +
        '<button id="gg-reshape" data-act="reshape">编辑边界</button>' +
        '<button id="gg-split" data-act="split">画线拆分</button>' +
        '<button id="gg-merge" data-act="merge">合并相邻网格</button>' +
        '<button id="gg-delete" data-act="delete">删除</button>' +
        '<button id="gg-integrity" data-act="integrity">完整性检查</button>' +
        '<button id="gg-history" data-act="history">历史与撤销</button>' +
        (p.parent_id ? '<button id="gg-select-parent" data-act="parent">选择上级网格</button>' : "") +
        "</div>" +
        '<div class="gg-options"><label><input type="checkbox" id="gg-clip" checked> 裁剪到上级网格</label> ' +
        '<label><input type="checkbox" id="gg-fit" checked> 贴合相邻网格</label></div>';
    }
    html += '<div id="gg-edit-body">' + (extra || "") + "</div></section>";
    GridGov.panel(html);
  }

  function say(html) {
    var body = document.getElementById("gg-edit-body");
    if (body) { body.innerHTML = html; } else { render(html); }
  }

  function sayError(res) {
    var err = (res.body && res.body.error) || { message: "请求失败 / request failed (" + res.status + ")" };
    var extra = err.current_version ? "（当前版本 " + esc(err.current_version) + "，请重新加载后再改）" : "";
    say('<p class="gg-error" id="gg-error">' + esc(err.message) + extra + "</p>");
    showPlace(err);
  }

  function option(id) { var el = document.getElementById(id); return !!(el && el.checked); }

  /* ---------------------------------------------------------------- preview and save */

  function movedText(moved) {
    return Object.keys(moved || {}).filter(function (k) { return moved[k]; }).map(function (k) {
      return esc(MOVE_NAMES[k] || k) + " " + esc(moved[k]);
    }).join("，") || "无";
  }

  function resultTable(fc, saved) {
    var rows = fc.features.map(function (f, i) {
      var p = f.properties;
      return '<tr data-grid-id="' + esc(f.id) + '"><td><i class="gg-swatch" style="background:' +
        PART_COLORS[i % PART_COLORS.length] + '"></i>' + esc(p.name) + "</td><td>" + esc(p.code) +
        '</td><td class="gg-count">' + esc(p.household_count) + "</td><td>" + (p.area_m2 / 10000).toFixed(2) +
        "</td><td>" + movedText(p.moved_in) + "</td></tr>";
    }).join("");
    var html = '<table class="gg-result"><thead><tr><th>网格</th><th>编码</th><th>户数</th><th>公顷</th><th>迁入</th></tr></thead><tbody>' +
      rows + "</tbody></table>";
    if (fc.retired && fc.retired.length) {
      html += "<p>" + (saved ? "已成为历史：" : "将成为历史：") + fc.retired.map(function (r) { return esc(r.name) + "（" + esc(r.code) + "）"; }).join("、") + "</p>";
    }
    if (fc.moved_to_parent && Object.keys(fc.moved_to_parent).some(function (k) { return fc.moved_to_parent[k]; })) {
      html += "<p>" + (saved ? "已移交" : "将移交") + "上级网格（空隙内）：" + movedText(fc.moved_to_parent) + "</p>";
    }
    var notes = fc.notes || {};
    if (notes.clipped_to_parent_m2) { html += "<p>已裁剪超出上级部分 " + esc(notes.clipped_to_parent_m2) + " 平方米</p>"; }
    if (notes.fitted_to_neighbours_m2) { html += "<p>已让出与相邻网格重叠部分：" + esc(JSON.stringify(notes.fitted_to_neighbours_m2)) + "</p>"; }
    return html;
  }

  function drawPreview(fc) {
    clearLayer("preview");
    var i = 0;
    E.preview = L.geoJSON(fc, {
      renderer: L.svg(),
      interactive: false,
      style: function () {
        var c = PART_COLORS[i++ % PART_COLORS.length];
        return { color: c, weight: 3, dashArray: "6 4", fillColor: c, fillOpacity: 0.25 };
      },
      onEachFeature: function (f, l) {
        l.bindTooltip(esc(f.properties.name) + "：" + esc(f.properties.household_count) + " 户",
          { permanent: true, direction: "center", className: "gg-part-tip" });
      }
    }).addTo(E.map);
  }

  /* Send the edit as a dry run, show what it would do, and keep it for confirmation. */
  function preview(edit) {
    clearLayer("marks");
    say("<p>正在计算… / checking…</p>");
    var body = Object.assign({}, edit.body, { dry_run: true });
    return api(edit.method, edit.url, body, edit.version).then(function (res) {
      if (!res.ok) { sayError(res); return; }
      E.pending = edit;
      drawPreview(res.body);
      say('<div id="gg-preview"><h3>' + esc(edit.label) + "：预览（尚未保存）</h3>" + resultTable(res.body) +
        '<button id="gg-confirm" data-act="confirm">确认保存</button> <button id="gg-cancel" data-act="cancel">取消</button></div>');
    });
  }

  function confirmEdit() {
    var edit = E.pending;
    if (!edit) { return; }
    say("<p>正在保存… / saving…</p>");
    api(edit.method, edit.url, edit.body, edit.version).then(function (res) {
      if (!res.ok) { sayError(res); return; }
      var fc = res.body;
      stopDrawing();
      clearLayer("preview");
      E.pending = null;
      E.mode = null;
      E.mergeSet = [];
      E.selected = fc.features.length === 1 ? fc.features[0] : null;
      return refreshAfterEdit().then(function () {
        render('<div id="gg-saved"><h3>已保存：' + esc(fc.change.kind_name) + "（#" + esc(fc.change.id) + "）</h3>" +
          resultTable(fc, true) + "</div>");
      });
    });
  }

  /* ---------------------------------------------------------------- tools */

  /* Snap only to grid boundaries. Other tools put their own things on the map after this
     script ran (open cases, the located point and its grid, a proposed division), so look at
     what is there each time a drawing starts: none of it is a place to put a vertex. */
  function snapToGridsOnly() {
    E.map.eachLayer(function (l) {
      if (l._pmTempLayer || l === E.drawn || !l.options) { return; }
      if (!(E.context && E.context !== l && E.context.hasLayer(l))) { l.options.snapIgnore = true; }
    });
  }

  function startDraw(shape, label, onDone) {
    reset();
    snapToGridsOnly();
    E.map.pm.enableDraw(shape, {
      snappable: true,
      snapDistance: 15,
      allowSelfIntersection: false,
      templineStyle: { color: "#d81b60" },
      hintlineStyle: { color: "#d81b60", dashArray: "5 5" },
      pathOptions: { color: "#d81b60", weight: 3, fillOpacity: 0.15 }
    });
    E.mode = label;
    E.onDrawn = onDone;
    var finish = '<button id="gg-finish" data-act="finish">完成绘制</button> <button data-act="cancel">取消</button>';
    say(label === "split" ?
      "<p>画一条穿过网格的线（从一侧边界外画到另一侧边界外），再点最后一个点或按回车结束。</p>" + finish :
      '<label>新网格名称 <input id="gg-new-name" value="' + esc(E.selected.properties.name + "新网格") + '"></label>' +
      "<p>在地图上依次点击顶点，点击第一个顶点或按回车闭合；靠近相邻网格和上级边界时自动吸附。</p>" + finish);
  }

  function finishDrawing() {
    var shape = E.map.pm.Draw.getActiveShape && E.map.pm.Draw.getActiveShape();
    if (shape && E.map.pm.Draw[shape] && E.map.pm.Draw[shape]._finishShape) { E.map.pm.Draw[shape]._finishShape(); }
  }

  function drawChild() {
    var p = E.selected.properties;
    startDraw("Polygon", "draw-child", function (layer) {
      var input = document.getElementById("gg-new-name");
      var name = (input && input.value.trim()) || p.name + "新网格";
      preview({
        label: "新建下级网格", method: "POST", url: "/api/grids",
        body: {
          type: "Feature", geometry: layer.toGeoJSON(false).geometry,
          properties: { parent_id: p.id, name: name },
          clip_to_parent: option("gg-clip"), fit_to_neighbours: option("gg-fit")
        }
      });
    });
  }

  function split() {
    var p = E.selected.properties;
    startDraw("Line", "split", function (layer) {
      preview({
        label: "拆分", method: "POST", url: "/api/grids/" + p.id + "/split",
        body: { line: layer.toGeoJSON(false).geometry }, version: p.version
      });
    });
  }

  function reshape() {
    reset();
    var s = E.selected;
    E.drawn = L.geoJSON(s, { renderer: L.svg(), style: { color: "#d81b60", weight: 3, fillOpacity: 0.1 } })
      .getLayers()[0];
    E.drawn.addTo(E.map);
    snapToGridsOnly();
    E.drawn.pm.enable({ snappable: true, snapDistance: 15, allowSelfIntersection: false });
    E.mode = "reshape";
    say("<p>拖动顶点修改边界（拖动边中点可加点，右键顶点可删点）。</p>" +
      '<button id="gg-reshape-preview" data-act="reshape-preview">预览修改</button> <button data-act="cancel">取消</button>');
  }

  function reshapePreview() {
    var s = E.selected;
    preview({
      label: "修改边界", method: "PATCH", url: "/api/grids/" + s.properties.id,
      body: {
        type: "Feature", geometry: E.drawn.toGeoJSON(false).geometry, properties: {},
        clip_to_parent: option("gg-clip"), fit_to_neighbours: option("gg-fit")
      },
      version: s.properties.version
    });
  }

  function merge() {
    reset();
    E.mode = "merge";
    E.mergeSet = [E.selected];
    showMergeSet();
  }

  function showMergeSet() {
    say("<p>点击相邻的同级网格加入合并（再次点击移出）。</p><ul>" +
      E.mergeSet.map(function (f) { return "<li>" + esc(f.properties.name) + "（" + esc(f.properties.code) + "）</li>"; }).join("") +
      '</ul><button id="gg-merge-preview" data-act="merge-preview">预览合并</button> <button data-act="cancel">取消</button>');
  }

  function mergePreview() {
    preview({
      label: "合并", method: "POST", url: "/api/grids/merge",
      body: {
        ids: E.mergeSet.map(function (f) { return f.properties.id; }),
        versions: E.mergeSet.map(function (f) { return f.properties.version; })
      }
    });
  }

  function rename() {
    var p = E.selected.properties;
    var name = document.getElementById("gg-rename").value.trim();
    preview({
      label: "改名", method: "PATCH", url: "/api/grids/" + p.id,
      body: { type: "Feature", geometry: null, properties: { name: name } }, version: p.version
    });
  }

  function remove() {
    var p = E.selected.properties;
    preview({ label: "删除", method: "DELETE", url: "/api/grids/" + p.id, body: {}, version: p.version });
  }

  function integrity() {
    var p = E.selected.properties;
    api("GET", "/api/grids/" + p.id + "/integrity").then(function (res) {
      if (!res.ok) { sayError(res); return; }
      clearLayer("marks");
      var kinds = { gap: "空隙", overlap: "重叠", outside: "超出上级", sliver: "狭长碎片" };
      E.marks = L.geoJSON(res.body, {
        renderer: L.svg(),
        style: function (f) {
          var c = { gap: "#ff6d00", overlap: "#d50000", outside: "#6200ea", sliver: "#c51162" }[f.properties.kind];
          return { color: c, weight: 3, fillColor: c, fillOpacity: 0.45 };
        },
        onEachFeature: function (f, l) {
          l.bindTooltip(kinds[f.properties.kind] + " " + f.properties.area_m2 + " 平方米，宽 " + f.properties.width_m + " 米");
        }
      }).addTo(E.map);
      var s = res.body.summary;
      say('<div id="gg-integrity-report"><h3>完整性检查：' + esc(p.name) + "</h3>" +
        (s.ok ? '<p class="gg-ok">下级网格无空隙、无重叠、无碎片。</p>' :
          "<p>空隙 " + s.gap_count + " 处（" + s.gap_area_m2 + " 平方米），重叠 " + s.overlap_count + " 处（" +
          s.overlap_area_m2 + " 平方米），超出上级 " + s.outside_count + " 处，狭长碎片 " + s.sliver_count + " 处。</p>") +
        (s.held_in_gaps && s.held_in_gaps.household ? "<p>空隙内住户 " + esc(s.held_in_gaps.household) + " 户</p>" : "") +
        "</div>");
    });
  }

  function history() {
    var p = E.selected.properties;
    api("GET", "/api/grids/changes?grid=" + p.id + "&limit=20").then(function (res) {
      if (!res.ok) { sayError(res); return; }
      var rows = res.body.changes.map(function (c) {
        var can = !c.undone_by && c.kind !== "undo";
        return "<tr><td>#" + c.id + "</td><td>" + esc(c.kind_name) + "</td><td>" + esc(c.actor) + "</td><td>" +
          esc(window.GridGovTime.format(c.at)) + "</td><td>" +
          (can ? '<button data-act="undo" data-change="' + c.id + '">撤销</button>' : (c.undone_by ? "已撤销" : "")) + "</td></tr>";
      }).join("");
      say('<h3>修改记录</h3><table class="gg-result"><thead><tr><th></th><th>操作</th><th>操作人</th><th>时间</th><th></th></tr></thead><tbody>' +
        (rows || '<tr><td colspan="5">暂无</td></tr>') + "</tbody></table>");
    });
  }

  function undo(changeId) {
    say("<p>正在撤销… / undoing…</p>");
    api("POST", "/api/grids/changes/" + changeId + "/undo", {}).then(function (res) {
      if (!res.ok) { sayError(res); return; }
      var fc = res.body;
      E.selected = fc.features.length === 1 ? fc.features[0] : null;
      return refreshAfterEdit().then(function () {
        render('<div id="gg-saved"><h3>已撤销 #' + esc(changeId) + "</h3>" + resultTable(fc, true) + "</div>");
      });
    });
  }

  function selectParent() {
    api("GET", "/api/grids/" + E.selected.properties.parent_id).then(function (res) {
      if (!res.ok) { sayError(res); return; }
      reset();
      select(res.body);
    });
  }

  var ACTIONS = {
    "draw-child": drawChild, reshape: reshape, split: split, merge: merge, "delete": remove,
    integrity: integrity, history: history, parent: selectParent, confirm: confirmEdit, rename: rename,
    "reshape-preview": reshapePreview, "merge-preview": mergePreview, finish: finishDrawing,
    cancel: function () { reset(); clearLayer("marks"); render(); }
  };

  /* ---------------------------------------------------------------- wiring */

  function onGridClick(feature, layer, e) {
    if (!E.on) { return true; }
    if (E.map.pm.globalDrawModeEnabled() || E.mode === "reshape") { return false; }  // drawing: Geoman takes it
    L.DomEvent.stopPropagation(e);
    if (E.mode === "merge") {
      var i = E.mergeSet.map(function (f) { return f.properties.id; }).indexOf(feature.properties.id);
      if (i >= 0) { E.mergeSet.splice(i, 1); } else { E.mergeSet.push(feature); }
      showMergeSet();
      return false;
    }
    if (feature.properties.outline) { return false; }  // outside one's grids: nothing to edit
    reset();
    clearLayer("marks");
    select(feature);
    return false;
  }

  function setEditMode(on) {
    E.on = on;
    document.documentElement.setAttribute("data-edit-mode", on ? "1" : "0");
    var button = document.getElementById("gg-edit-toggle");
    if (button) { button.classList.toggle("gg-on", on); button.textContent = on ? "退出编辑" : "编辑模式"; }
    if (on) {
      render();
    } else {
      reset();
      clearLayer("marks");
      clearLayer("context");
      E.selected = null;
      document.getElementById("gg-panel").hidden = true;
    }
  }

  GridGov.onReady(function (map, layers) {
    E.map = map;
    if (!map.pm) { return; }  // Leaflet-Geoman did not load: no edit mode
    // Snap only to grid boundaries: points, labels and circles are no place to put a vertex.
    ["households", "service_points", "cameras", "labels", "service_circles"].forEach(function (k) {
      if (!layers[k]) { return; }
      var mark = function (l) { l.options.snapIgnore = true; l.options.pmIgnore = true; };
      if (layers[k].eachLayer) { layers[k].eachLayer(mark); }
      layers[k].on("layeradd", function (ev) { mark(ev.layer); });
    });
    GridGov.clickHandlers.unshift(onGridClick);
    map.pm.setGlobalOptions({ finishOnEnter: true, exitModeOnEscape: true });
    map.on("pm:create", function (ev) {
      E.drawn = ev.layer;
      ev.layer.options.snapIgnore = true;
      if (E.onDrawn) { var done = E.onDrawn; E.onDrawn = null; done(ev.layer); }
    });
    var Toggle = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-edit-toggle");
        div.innerHTML = '<button id="gg-edit-toggle" type="button" title="绘制、修改、拆分、合并网格">编辑模式</button>';
        L.DomEvent.disableClickPropagation(div);
        div.querySelector("button").addEventListener("click", function () { setEditMode(!E.on); });
        return div;
      }
    });
    map.addControl(new Toggle());
    document.getElementById("gg-panel-body").addEventListener("click", function (ev) {
      var target = ev.target.closest("[data-act]");
      if (!target || !E.on) { return; }
      var act = target.getAttribute("data-act");
      if (act === "undo") { undo(target.getAttribute("data-change")); return; }
      if (ACTIONS[act]) { ACTIONS[act](); }
    });
  });
  GridGov.edit = E;
})();
