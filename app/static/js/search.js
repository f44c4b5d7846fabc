/* The search box of the e-map and the desk: grids, addresses, people, case codes, service
   points and cameras (GET /api/search). Suggestions are built as text nodes. Choosing one on the
   e-map flies to it and opens its card (a grid's notice board, a popup for a point); on the
   desk a case opens in the desk, anything else on the e-map (/emap#gg-focus=…). */
(function () {
  "use strict";
  var DESK_ROLES = ["admin", "centre", "grid_chief", "micro_chief", "department"];
  var ZOOM = { 1: 13, 2: 14, 3: 16, 4: 17, 5: 18 };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function role() {
    var html = document.documentElement.getAttribute("data-gg-role");
    if (html) { return html; }
    var meta = document.querySelector("meta[name='gridgov-role']");
    return meta ? meta.getAttribute("content") : "";
  }

  function onEmap() { return !!(window.GridGov && window.GridGov.map); }

  function caseUrl(item) {
    return DESK_ROLES.indexOf(role()) >= 0 ? "/cases/desk?case=" + encodeURIComponent(item.id) : "/cases/worker";
  }

  /* ---------------------------------------------------------------- choosing a result */

  function popupAt(item) {
    var G = window.GridGov, map = G.map;
    var box = el("div", "gg-search-popup");
    box.setAttribute("data-kind", item.kind);
    box.setAttribute("data-id", String(item.id));
    box.appendChild(el("b", null, item.label));
    box.appendChild(el("div", "gg-search-kind", item.kind_name + (item.detail ? " · " + item.detail : "")));
    if (item.kind === "case") {
      var a = el("a", null, "打开事件详情");
      a.href = caseUrl(item);
      box.appendChild(a);
    }
    if (item.grid_id) {
      var g = el("button", "gg-search-grid", "所在网格公示牌");
      g.type = "button";
      g.addEventListener("click", function () { G.showNoticeBoard(item.grid_id); });
      box.appendChild(g);
    }
    L.popup({ maxWidth: 320 }).setLatLng([item.lat, item.lon]).setContent(box).openOn(map);
  }

  function chooseOnMap(item) {
    var G = window.GridGov, map = G.map;
    if (item.kind === "grid" || item.kind === "worker") {
      var gridId = item.open.grid;
      return window.GridGovApi.request("GET", "/api/grids/" + encodeURIComponent(gridId))
        .then(function (res) { return res.ok ? res.body : null; })
        .then(function (feature) {
          if (feature && feature.geometry) {
            map.flyToBounds(L.geoJSON(feature).getBounds(), { maxZoom: 18, duration: 0.6 });
          } else if (item.lat != null) {
            map.flyTo([item.lat, item.lon], ZOOM[4], { duration: 0.6 });
          }
          return G.showNoticeBoard(gridId);
        })
        .then(function () {
          if (item.kind === "worker") {
            var board = document.querySelector("#gg-panel .gg-board");
            if (board) { board.setAttribute("data-worker-id", String(item.id)); }
          }
        });
    }
    map.flyTo([item.lat, item.lon], 18, { duration: 0.6 });
    map.once("moveend", function () { popupAt(item); });
    return Promise.resolve();
  }

  function choose(item) {
    if (onEmap()) { return chooseOnMap(item); }
    if (item.kind === "case") {
      if (window.CaseDesk && window.CaseDesk.show) { return window.CaseDesk.show(item.id); }
      window.location.assign(caseUrl(item));
      return Promise.resolve();
    }
    window.location.assign("/emap#gg-focus=" + encodeURIComponent(JSON.stringify(item)));
    return Promise.resolve();
  }

  /* ---------------------------------------------------------------- the box */

  function build() {
    var wrap = el("div", "gg-search");
    wrap.id = "gg-search";
    var input = el("input");
    input.type = "search";
    input.placeholder = "搜索网格、地址、人员、事件编号…";
    input.setAttribute("aria-label", "搜索");
    input.setAttribute("autocomplete", "off");
    input.maxLength = 60;
    var list = el("ul", "gg-search-list");
    list.setAttribute("role", "listbox");
    list.hidden = true;
    wrap.appendChild(input);
    wrap.appendChild(list);

    var items = [], active = -1, timer = null, asked = 0;

    function close() { list.hidden = true; active = -1; }

    function mark() {
      Array.prototype.forEach.call(list.children, function (li, i) {
        li.classList.toggle("gg-active", i === active);
        li.setAttribute("aria-selected", i === active ? "true" : "false");
      });
    }

    function pick(i) {
      var item = items[i];
      if (!item) { return; }
      close();
      input.value = item.label;
      choose(item);
    }

    function show(found, message) {
      items = found;
      list.textContent = "";
      active = -1;
      if (message) {
        list.appendChild(el("li", "gg-search-empty", message));
      }
      found.forEach(function (item, i) {
        var li = el("li", "gg-search-item");
        li.setAttribute("role", "option");
        li.setAttribute("data-kind", item.kind);
        li.setAttribute("data-id", String(item.id));
        li.appendChild(el("span", "gg-search-badge gg-search-" + item.kind, item.kind_name));
        li.appendChild(el("span", "gg-search-label", item.label));
        if (item.detail) { li.appendChild(el("span", "gg-search-detail", item.detail)); }
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); pick(i); });
        list.appendChild(li);
      });
      list.hidden = false;
    }

    function ask() {
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      var mine = ++asked;
      window.GridGovApi.request("GET", "/api/search?limit=12&q=" + encodeURIComponent(q))
        .then(function (res) {
          if (mine !== asked) { return; }
          if (res.status === 0) { show([], "搜索失败，请稍后再试"); return; }
          if (!res.ok) { show([], (res.body && res.body.error && res.body.error.message) || "搜索失败"); return; }
          show(res.body.items, res.body.items.length ? null : "没有找到“" + q + "”");
        })
        .catch(function () { if (mine === asked) { show([], "搜索失败，请稍后再试"); } });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 180);
    });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown" && items.length) { active = (active + 1) % items.length; mark(); ev.preventDefault(); }
      else if (ev.key === "ArrowUp" && items.length) { active = (active - 1 + items.length) % items.length; mark(); ev.preventDefault(); }
      else if (ev.key === "Enter") { ev.preventDefault(); pick(active >= 0 ? active : 0); }
      else if (ev.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
    input.addEventListener("focus", function () { if (items.length) { list.hidden = false; } });
    // The map must not take the box's clicks, wheel or keys.
    ["mousedown", "dblclick", "wheel", "touchstart", "pointerdown"].forEach(function (name) {
      wrap.addEventListener(name, function (ev) { ev.stopPropagation(); });
    });
    return wrap;
  }

  function place(box) {
    var slot = document.getElementById("gg-search-slot");
    if (slot) { slot.appendChild(box); return; }
    if (document.body.classList.contains("gg-emap")) {
      box.classList.add("gg-search-floating");
      document.body.appendChild(box);
      return;
    }
    var header = document.querySelector("header");
    if (header) { header.appendChild(box); } else { document.body.insertBefore(box, document.body.firstChild); }
  }

  /* A result chosen on another page: /emap#gg-focus={json}. */
  function focusFromHash() {
    var m = /(?:^#|&)gg-focus=([^&]+)/.exec(location.hash || "");
    if (!m || !window.GridGov) { return; }
    var item;
    try { item = JSON.parse(decodeURIComponent(m[1])); } catch (e) { return; }
    if (!item || typeof item !== "object" || !item.open) { return; }
    window.GridGov.onReady(function () {
      window.GridGov.whenSettled(function () {
        history.replaceState(null, "", location.pathname + location.search);
        chooseOnMap(item);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    place(build());
    focusFromHash();
  });
  window.GridGovSearch = { choose: choose };
})();
