/* The locate box of the e-map: typed or pasted coordinates in a chosen CRS, or a click on the map,
   find the micro-grid that owns the point; the point gets a marker, the micro-grid is highlighted,
   and the panel shows the grid chain, the owner and who stands behind them. */
(function () {
  "use strict";
  var METHOD_TEXT = {
    inside: "位于网格内",
    boundary: "位于网格边界（按编码最小者归属）",
    nearest: "网格外就近归属（30 米内）",
    ancestor: "未落入微网格，由上级网格兜底",
    unassigned: "不在任何网格内，转指挥中心待分派"
  };

  function gkZone(lon) {
    var cm = Math.min(Math.max(Math.round(lon / 3) * 3, 75), 135);
    return { epsg: 4534 + (cm - 75) / 3, cm: cm };
  }

  /* "117.23, 31.82", "117.23 31.82", "117.23，31.82" … → [x, y] or null. */
  function parseXY(text) {
    var parts = String(text || "").trim().split(/[\s,，;；]+/).filter(function (s) { return s !== ""; });
    if (parts.length !== 2) { return null; }
    var x = Number(parts[0]), y = Number(parts[1]);
    return isFinite(x) && isFinite(y) ? [x, y] : null;
  }

  function personRow(p) {
    var e = GridGov.escape;
    if (p.kind === "command_centre") { return "<li>" + e(p.name) + "</li>"; }
    var phone = p.phone ? ' <a href="tel:' + e(p.phone) + '">' + e(p.phone) + "</a>" : "";
    var where = p.grid_name ? '<span class="gg-where">（' + e(p.grid_name) + "）</span>" : "";
    return "<li>" + e(p.role_name) + " " + e(p.name) + phone + where + "</li>";
  }

  function resultHtml(r, neighbours) {
    var e = GridGov.escape;
    var chain = (r.chain || []).map(function (g) { return e(g.name); }).join(" › ") || "—";
    var owner = r.owner ? "<ul class=\"gg-owner\">" + personRow(r.owner) + "</ul>" : "<p>指挥中心（待分派）</p>";
    var html = '<section class="gg-locate-result" data-method="' + e(r.method) + '" data-grid-id="' +
      e(r.grid ? r.grid.id : "") + '"><h2>坐标定位</h2>' +
      "<dl><dt>坐标</dt><dd>" + r.point.lon.toFixed(6) + ", " + r.point.lat.toFixed(6) + "（WGS84）</dd>" +
      "<dt>输入坐标系</dt><dd>" + e(r.crs) + "</dd>" +
      "<dt>归属方式</dt><dd class=\"gg-method\">" + e(METHOD_TEXT[r.method] || r.method) + "</dd>" +
      "<dt>网格</dt><dd class=\"gg-chain\">" + chain + "</dd>" +
      (r.grid ? "<dt>微网格</dt><dd class=\"gg-name\">" + e(r.grid.name) + "</dd><dt>编码</dt><dd>" + e(r.grid.code) + "</dd>" : "") +
      "</dl>";
    if (r.override) {
      html += '<p class="gg-override">专属责任区域：' + e(r.override.name) + "（" + e(r.override.category) + "）</p>";
    }
    if (r.network) {  // a category routed by a departmental network (多网合一)
      html += '<p class="gg-network">专业网格：' + e(r.network.department.name) + " · " + e(r.network.name) +
        " · " + e(r.network.grid.name) + (r.network.person ? "（责任人 " + e(r.network.person.name) + "）" : "") + "</p>";
    }
    html += "<h3>责任人</h3>" + owner;
    html += "<h3>上报升级顺序</h3><ol class=\"gg-fallback\">" + (r.fallback || []).map(personRow).join("") + "</ol>";
    if (neighbours && neighbours.length) {
      html += "<h3>邻近网格（可转派）</h3><ul class=\"gg-neighbours\">" + neighbours.map(function (n) {
        return "<li>" + e(n.grid.name) + "（" + n.distance_m.toFixed(1) + " 米）" +
          (n.owner ? "：" + e(n.owner.role_name) + " " + e(n.owner.name) : "") + "</li>";
      }).join("") + "</ul>";
    }
    return html + "</section>";
  }

  GridGov.onReady(function (map) {
    var state = { marker: null, highlight: null, picking: false, seq: 0 };
    GridGov.locate = state;
    var centre = map.getCenter();
    var zone = gkZone(centre.lng);

    var Box = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-locate");
        div.innerHTML =
          '<form id="gg-locate-form" autocomplete="off">' +
          '<div class="gg-locate-title">坐标定位</div>' +
          '<input id="gg-locate-input" type="text" placeholder="经度, 纬度（或 X, Y）" title="输入或粘贴坐标">' +
          '<select id="gg-locate-crs" title="坐标系">' +
          '<option value="wgs84">WGS84（GPS）</option>' +
          '<option value="cgcs2000">CGCS2000（天地图）</option>' +
          '<option value="gcj02">GCJ-02（高德/腾讯）</option>' +
          '<option value="bd09">BD-09（百度）</option>' +
          '<option value="EPSG:' + zone.epsg + '">CGCS2000 高斯投影 3 度带 ' + zone.cm + '°E（EPSG:' + zone.epsg + "）</option>" +
          "</select>" +
          '<input id="gg-locate-category" type="text" placeholder="事件类别（可选）" title="事件类别：有专属责任区域时按其归属">' +
          '<div class="gg-locate-actions"><button type="submit" id="gg-locate-go">定位</button>' +
          '<label><input type="checkbox" id="gg-locate-pick"> 地图点选</label></div>' +
          '<div id="gg-locate-msg" class="gg-error" role="alert"></div></form>';
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        // On a phone the box folds to its title (CSS); a tap on the title opens it.
        div.querySelector(".gg-locate-title").addEventListener("click", function () {
          div.classList.toggle("gg-open");
        });
        return div;
      }
    });
    map.addControl(new Box());

    var form = document.getElementById("gg-locate-form");
    var msg = document.getElementById("gg-locate-msg");
    var pick = document.getElementById("gg-locate-pick");

    function show(r) {
      var ll = [r.point.lat, r.point.lon];
      if (state.marker) { state.marker.setLatLng(ll); } else {
        state.marker = L.marker(ll, { title: "定位点", keyboard: false }).addTo(map);
      }
      if (state.highlight) { map.removeLayer(state.highlight); state.highlight = null; }
      var target = r.grid || (r.chain && r.chain.length ? r.chain[r.chain.length - 1] : null);
      var mine = ++state.seq;
      var grid = target ? window.GridGovApi.request("GET", "/api/grids/" + encodeURIComponent(target.id)).then(function (res) { return res.body; }) : Promise.resolve(null);
      var near = r.grid ? window.GridGovApi.request("GET", "/api/locate/neighbours?lon=" + r.point.lon + "&lat=" + r.point.lat + "&grid=" + r.grid.id)
        .then(function (res) { return res.ok ? res.body : { neighbours: [] }; }) : Promise.resolve({ neighbours: [] });
      return Promise.all([grid, near]).then(function (both) {
        if (mine !== state.seq) { return; }
        var feature = both[0];
        if (feature && feature.geometry) {
          state.highlight = L.geoJSON(feature, {
            interactive: false,
            style: { color: "#d50000", weight: 4, fillColor: "#ffeb3b", fillOpacity: 0.35 }
          }).addTo(map);
        }
        GridGov.panel(resultHtml(r, both[1].neighbours));
        if (!map.getBounds().contains(ll)) { map.setView(ll, Math.max(map.getZoom(), 16)); }
        document.documentElement.setAttribute("data-locate-done", String(mine));
      });
    }

    function locate(params) {
      msg.textContent = "";
      var category = document.getElementById("gg-locate-category").value.trim();
      if (category) { params.category = category; }
      var query = Object.keys(params).map(function (k) {
        return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
      }).join("&");
      return window.GridGovApi.request("GET", "/api/locate?" + query)
        .then(function (res) {
          if (!res.ok) {
            var why = window.GridGovText.message((res.body && res.body.error && res.body.error.message) || "请求失败");
            msg.textContent = why.indexOf("无法定位") === 0 ? why : "无法定位：" + why;
            return;
          }
          return show(res.body);
        })
        .catch(function (err) { msg.textContent = "定位失败：" + err; });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var xy = parseXY(document.getElementById("gg-locate-input").value);
      if (!xy) { msg.textContent = "请输入两个数字：经度, 纬度（投影坐标为 X, Y）"; return; }
      var crs = document.getElementById("gg-locate-crs").value;
      var projected = crs.indexOf("EPSG:") === 0;
      var params = projected ? { x: xy[0], y: xy[1], crs: crs } : { lon: xy[0], lat: xy[1], crs: crs };
      locate(params);
    });

    function pickAt(latlng) {
      document.getElementById("gg-locate-input").value = latlng.lng.toFixed(6) + ", " + latlng.lat.toFixed(6);
      document.getElementById("gg-locate-crs").value = "wgs84";
      locate({ lon: latlng.lng, lat: latlng.lat, crs: "wgs84" });
    }

    /* In pick mode a click anywhere — on a grid or not — locates that spot (and opens no
       notice board). */
    GridGov.clickHandlers.push(function () { return !pick.checked; });
    map.on("click", function (e) { if (pick.checked) { pickAt(e.latlng); } });
    pick.addEventListener("change", function () {
      map.getContainer().classList.toggle("gg-picking", pick.checked);
    });
  });
})();
