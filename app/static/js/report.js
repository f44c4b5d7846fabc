/* A resident's report page (phone first): category, place on the map or by GPS, description,
 * photos and a contact, sent to the public report API; the answer's code leads to /cases/track.
 * Every refusal is said in Chinese next to the field it concerns. */
(function () {
  "use strict";
  var S = JSON.parse(document.getElementById("report-settings").textContent);
  var map, marker = null, place = null, files = [], busy = false;
  var key = null;  // one idempotency key per report: a second tap sends the same report

  var FIELD_OF = { x: "place", y: "place", lon: "place", lat: "place", crs: "place", category: "category",
    description: "description", photo: "photo", photo_base64: "photo", reporter_contact: "reporter_contact",
    reporter_name: "reporter_contact", address: "place" };
  var TEXT_OF = {
    place: "位置无效：请在地图上点选事件位置，或使用手机定位",
    category: "请选择有效的事件类型",
    description: "问题描述无效或过长（最多4000字）",
    photo: "照片无效：仅支持 JPG、PNG、WebP 格式，每张不超过15MB，最多" + S.max_photos + "张",
    reporter_contact: "联系方式无效，请填写手机号码"
  };

  function hasChinese(s) { return /[\u4e00-\u9fff]/.test(s || ""); }

  function fieldError(name, text) {
    var el = document.querySelector('[data-error-for="' + name + '"]');
    if (el) { el.textContent = text || ""; }
  }

  function clearErrors() {
    document.querySelectorAll(".gg-field-error").forEach(function (el) { el.textContent = ""; });
    document.getElementById("report-msg").textContent = "";
  }

  /* The Chinese message for an error answer of the API (status, body). */
  function refusal(status, err) {
    err = err || {};
    var field = FIELD_OF[err.param || err.field || ""];
    if (status === 429) { return { text: "提交过于频繁，请稍后再试" }; }
    if (status === 413) { return { field: "photo", text: "照片太大，每张不超过15MB" }; }
    if (status === 503) { return { text: "系统繁忙，请稍后再试" }; }
    if (!field && /coordinat|crs/i.test(err.code || "")) { field = "place"; }
    if (field) { return { field: field, text: TEXT_OF[field] }; }
    if (status === 422 && /locat|grid|territor|outside|placed/i.test(err.code + " " + err.message)) {
      return { field: "place", text: "该位置不在本平台的服务范围内，请重新选择位置" };
    }
    var msg = err.message || "";
    var zh = hasChinese(msg) ? msg.split(" / ")[0] : "";
    return { text: zh || "提交失败（错误 " + status + "），请检查填写内容后重试" };
  }

  function setPlace(lat, lng, how) {
    place = { lat: lat, lon: lng };
    if (marker) { marker.setLatLng([lat, lng]); } else { marker = L.marker([lat, lng]).addTo(map); }
    document.getElementById("report-where").textContent = (how || "已选位置") + "：" + lng.toFixed(6) + "，" + lat.toFixed(6);
    fieldError("place", "");
  }

  /* The own basemap (roads, buildings, water, green), drawn as on the e-map. */
  function basemapStyle(v) {
    var src = "basemap", lyr = "basemap";
    var tiles = v.tiles.map(function (t) { return window.location.origin + t; });
    return { version: 8, sources: { basemap: { type: "vector", tiles: tiles, minzoom: 0, maxzoom: v.max_zoom } },
      layers: [
        { id: "bg", type: "background", paint: { "background-color": "#f2efe9" } },
        { id: "green", type: "fill", source: src, "source-layer": lyr, filter: ["==", ["get", "kind"], "green"], paint: { "fill-color": "#dfe8d3" } },
        { id: "water", type: "fill", source: src, "source-layer": lyr, filter: ["==", ["get", "kind"], "water"], paint: { "fill-color": "#c9dbe6" } },
        { id: "buildings", type: "fill", source: src, "source-layer": lyr, filter: ["==", ["get", "kind"], "building"],
          paint: { "fill-color": "#e2ddd3", "fill-outline-color": "#c9c1b3" } },
        { id: "roads", type: "line", source: src, "source-layer": lyr, filter: ["==", ["geometry-type"], "LineString"],
          paint: { "line-color": "#ffffff", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5, 19, 12] } }
      ] };
  }

  function initMap() {
    map = L.map("report-map", { zoomControl: true });
    if (S.vector && window.maplibregl && L.maplibreGL) {
      maplibregl.setWorkerUrl(window.location.origin + S.worker);
      L.maplibreGL({ style: basemapStyle(S.vector), interactive: false, attributionControl: false }).addTo(map);
    }
    S.rasters.forEach(function (src) {
      L.tileLayer(src.tiles[0], { maxZoom: 19, tileSize: src.tile_size || 256 }).addTo(map);
    });
    if (S.attribution) { map.attributionControl.addAttribution(S.attribution); }
    var e = S.extent;
    if (e) { map.fitBounds([[e[1], e[0]], [e[3], e[2]]]); } else { map.setView([35.0, 105.0], 4); }
    map.on("click", function (ev) { setPlace(ev.latlng.lat, ev.latlng.lng, "已在地图上选择"); });
    window.ReportMap = map;  // for tests and add-ons
  }

  function gps() {
    if (!navigator.geolocation) { fieldError("place", "此设备不支持定位，请在地图上点选位置"); return; }
    document.getElementById("report-where").textContent = "正在定位…";
    navigator.geolocation.getCurrentPosition(function (pos) {
      setPlace(pos.coords.latitude, pos.coords.longitude, "已定位");
      map.setView([pos.coords.latitude, pos.coords.longitude], 17);
    }, function (err) {
      document.getElementById("report-where").textContent = "";
      fieldError("place", err.code === 1 ? "未获得定位权限，请在地图上点选位置" : "定位失败，请在地图上点选位置");
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  }

  function pickPhotos(ev) {
    var chosen = Array.prototype.slice.call(ev.target.files || []);
    var box = document.getElementById("report-previews");
    box.textContent = "";
    fieldError("photo", "");
    if (chosen.length > S.max_photos) {
      fieldError("photo", "最多上传" + S.max_photos + "张照片");
      chosen = chosen.slice(0, S.max_photos);
    }
    files = chosen.filter(function (f) {
      if (["image/jpeg", "image/png", "image/webp"].indexOf(f.type) < 0) { fieldError("photo", "“" + f.name + "”不是 JPG、PNG 或 WebP 图片，已忽略"); return false; }
      if (f.size > S.max_bytes) { fieldError("photo", "“" + f.name + "”超过15MB，已忽略"); return false; }
      return true;
    });
    document.getElementById("report-photo-count").textContent = files.length ? "已选择 " + files.length + " 张" : "未选择照片";
    files.forEach(function (f) {
      var img = document.createElement("img");
      img.alt = "照片预览";
      img.src = URL.createObjectURL(f);
      box.appendChild(img);
    });
  }

  function check(form) {
    var ok = true;
    if (!form.category.value) { fieldError("category", "请选择事件类型"); ok = false; }
    if (!place) { fieldError("place", "请在地图上点选事件位置，或使用手机定位"); ok = false; }
    if (!form.description.value.trim()) { fieldError("description", "请填写问题描述"); ok = false; }
    var phone = form.reporter_contact.value.trim();
    if (phone && !/^[0-9+\- ]{5,20}$/.test(phone)) { fieldError("reporter_contact", "联系电话格式不正确"); ok = false; }
    return ok;
  }

  function done(answer) {
    if (!answer.code && answer.case) {
      // Signed in as staff: the full answer; show what a resident would get.
      answer = { code: answer.case.public_code, status_name: answer.case.status_name, secret: answer.secret,
        responsible: { grid: answer.case.grid ? answer.case.grid.name : null } };
    }
    document.getElementById("report-form").hidden = true;
    var box = document.getElementById("report-done");
    box.hidden = false;
    document.getElementById("report-code").textContent = answer.code;
    var who = answer.responsible || {};
    document.getElementById("report-state").textContent = "当前状态：" + (answer.status_name || "") +
      (who.grid ? "，所属网格：" + who.grid : "") + (who.name ? "，负责人：" + (who.role_name ? who.role_name + " " : "") + who.name : "");
    document.getElementById("report-secret").textContent = answer.secret || "（已提交过，沿用原凭证）";
    var href = "/cases/track?code=" + encodeURIComponent(answer.code) + (answer.secret ? "#secret=" + encodeURIComponent(answer.secret) : "");
    document.getElementById("report-track").href = href;
    document.documentElement.setAttribute("data-report-code", answer.code);
  }

  function submit(ev) {
    ev.preventDefault();
    if (busy) { return; }
    var form = ev.target;
    clearErrors();
    if (!check(form)) { document.getElementById("report-msg").textContent = "请按提示补充或修改后再提交"; return; }
    var body = new FormData();
    body.append("category", form.category.value);
    body.append("lon", String(place.lon));
    body.append("lat", String(place.lat));
    body.append("source", "resident");
    body.append("description", form.description.value.trim());
    ["address", "reporter_contact", "reporter_name"].forEach(function (k) {
      if (form[k].value.trim()) { body.append(k, form[k].value.trim()); }
    });
    files.forEach(function (f) { body.append("photo", f, f.name); });
    key = key || ("r-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12));
    busy = true;
    document.getElementById("report-submit").disabled = true;
    document.getElementById("report-msg").textContent = "正在提交…";
    window.GridGovApi.request("POST", "/api/cases", body, { "Idempotency-Key": key })
      .then(function (r) {
        if (r.status === 0) { throw new Error("network"); }
        var data = r.body || {};
        if (!r.ok) {
          var why = refusal(r.status, data.error);
          if (why.field) { fieldError(why.field, why.text); }
          document.getElementById("report-msg").textContent = why.text;
          if (r.status !== 429 && r.status !== 503) { key = null; }  // a corrected report is a new one
          return;
        }
        document.getElementById("report-msg").textContent = "";
        done(data);
      })
      .catch(function () { document.getElementById("report-msg").textContent = "网络异常，提交未完成，请检查网络后重试"; })
      .then(function () { busy = false; document.getElementById("report-submit").disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initMap();
    var sel = document.getElementById("report-category");
    window.GridGovApi.call("GET", "/api/case-categories")
      .then(function (cats) {
        cats.forEach(function (c) {
          var o = document.createElement("option");
          o.value = c.code;
          o.textContent = c.name;
          sel.appendChild(o);
        });
        document.documentElement.setAttribute("data-report-ready", "1");
      })
      .catch(function () { document.getElementById("report-msg").textContent = "事件类型加载失败，请刷新页面重试"; });
    document.getElementById("report-gps").addEventListener("click", gps);
    document.getElementById("report-photos").addEventListener("change", pickPhotos);
    document.getElementById("report-form").addEventListener("submit", submit);
    ["category", "description", "reporter_contact"].forEach(function (k) {
      document.getElementById("report-form")[k].addEventListener("input", function () { fieldError(k, ""); });
    });
  });
})();
