/* E-map feature "上报事件": click a place, fill in the form, and the case is reported, routed and
   dispatched; the case then shows on the map's case tiles (overdue in red, drawn on top). */
(function () {
  "use strict";
  var esc = function (s) { return GridGov.escape(s); };

  GridGov.onReady(function (map) {
    // The open cases themselves come with the map's tiles (the "cases" layer, drawn on top).
    var reporting = false, categories = [];
    window.GridGovApi.call("GET", "/api/case-categories").then(function (c) { categories = c; });

    var Button = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "leaflet-bar gg-report-ctl");
        div.innerHTML = '<a href="#" id="gg-report-btn" title="在地图上点选位置上报事件">上报事件</a>';
        L.DomEvent.disableClickPropagation(div);
        div.querySelector("a").addEventListener("click", function (ev) {
          ev.preventDefault();
          reporting = !reporting;
          map.getContainer().classList.toggle("gg-reporting", reporting);
          ev.target.classList.toggle("gg-on", reporting);
          if (reporting) { GridGov.panel('<p class="gg-hint">请在地图上点击事件发生位置。</p>'); }
        });
        return div;
      }
    });
    map.addControl(new Button());

    // While reporting, a click on a grid reports instead of opening its notice board.
    GridGov.clickHandlers.push(function () { return reporting ? false : undefined; });

    map.on("click", function (e) {
      if (!reporting) { return; }
      var lat = e.latlng.lat, lon = e.latlng.lng;
      var options = categories.map(function (c) { return '<option value="' + esc(c.code) + '">' + esc(c.name) + "</option>"; }).join("");
      GridGov.panel('<form id="gg-report-form" class="gg-report"><h2>上报事件</h2>' +
        "<p>位置：" + lon.toFixed(6) + ", " + lat.toFixed(6) + "</p>" +
        '<label>类型 <select name="category">' + options + "</select></label>" +
        '<label>描述 <textarea name="description" required></textarea></label>' +
        '<label>联系电话 <input name="reporter_contact" inputmode="tel"></label>' +
        '<label>来源 <select name="source"><option value="patrol">网格员巡查</option><option value="resident">居民上报</option><option value="hotline">热线</option><option value="superior">上级交办</option></select></label>' +
        '<button type="submit">提交</button></form><div id="gg-report-result"></div>');
      var form = document.getElementById("gg-report-form");
      var key = "emap-" + Date.now() + "-" + Math.random().toString(36).slice(2);  // a retry stays one case
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = { x: lon, y: lat, crs: "wgs84", idempotency_key: key };
        ["category", "description", "reporter_contact", "source"].forEach(function (k) { body[k] = form[k].value; });
        window.GridGovApi.request("POST", "/api/cases", body)
          .then(function (r) { return { ok: r.ok, d: r.body || {} }; })
          .then(function (res) {
            var out = document.getElementById("gg-report-result");
            if (!res.ok) { out.innerHTML = '<p class="gg-error">' + esc(res.d.error && res.d.error.message) + "</p>"; return; }
            var c = res.d.case, owner = res.d.routing.owner;
            var dups = (res.d.duplicates || []).map(function (d) { return esc(d.code) + "（" + d.distance_m + " 米）"; }).join("、");
            out.innerHTML = '<div class="gg-reported" data-code="' + esc(c.code) + '" data-public-code="' + esc(c.public_code) +
              '" data-secret="' + esc(res.d.secret || "") + '" data-assignee="' + esc(c.assignee ? c.assignee.id : "") + '">' +
              "<p>已上报，事件编号 <strong>" + esc(c.code) + "</strong></p>" +
              "<p>居民查询码 <strong>" + esc(c.public_code) + "</strong>" +
              (res.d.secret ? "，评价凭证 <strong>" + esc(res.d.secret) + "</strong>（只显示这一次，请转告上报人）" : "") + "</p><p>所属网格：" + esc(c.grid ? c.grid.name : "未定位（转指挥中心）") + "</p>" +
              "<p>派单给：" + esc(owner ? owner.name + "（" + owner.role_name + "）" : "指挥中心") + "</p>" +
              "<p>处置时限：" + esc(window.GridGovTime.format(c.deadline)) + "</p>" + (dups ? "<p>附近可能重复：" + dups + "</p>" : "") + "</div>";
            form.querySelector("button").disabled = true;
            reporting = false;
            map.getContainer().classList.remove("gg-reporting");
            document.getElementById("gg-report-btn").classList.remove("gg-on");
            GridGov.refreshTiles();
          });
      });
    });
  });
})();
