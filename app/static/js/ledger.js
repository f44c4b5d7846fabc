/* A ledger (台账): filters, a sortable table, paging, reveal of a household's masked fields on
 * request, and the export of the same records. Every value enters the page as text. */
(function () {
  "use strict";
  var C = window.Cases;
  var S = JSON.parse(document.getElementById("ledger-settings").textContent);
  var state = { sort: null, order: "asc", offset: 0, limit: 50, total: 0 };

  function grid(g) { return g ? g.name + "（" + g.code + "）" : "—"; }
  function yes(v) { return v ? "是" : "否"; }

  function tagsCell(td, tags) {
    (tags || []).forEach(function (t) {
      var s = document.createElement("span");
      s.className = "gg-tag";
      s.textContent = t.name;
      td.appendChild(s);
    });
  }

  function revealCell(td, r) {
    var name = document.createElement("span");
    name.className = "gg-head-name";
    name.textContent = r.head_name || "—";
    td.appendChild(name);
    if (!r.head_name && !r.head_phone) { return; }
    var b = document.createElement("button");
    b.type = "button";
    b.className = "gg-reveal";
    b.textContent = "查看";
    b.title = "查看完整姓名和电话，记入审计日志";
    b.addEventListener("click", function () {
      C.call("POST", "/api/households/" + r.id + "/reveal", { fields: ["head_name", "head_phone"] }).then(function (full) {
        name.textContent = full.head_name || "—";
        var tr = td.parentNode, phone = tr.querySelector(".gg-head-phone");
        if (phone) { phone.textContent = full.head_phone || "—"; }
        b.remove();
      }).catch(function (err) { document.getElementById("ledger-msg").textContent = "查看失败：" + err.message; });
    });
    td.appendChild(document.createTextNode(" "));
    td.appendChild(b);
  }

  var COLUMNS = {
    households: [
      { label: "地址", sort: "address", value: function (r) { return r.address || [r.building, r.unit, r.room].filter(Boolean).join(" "); } },
      { label: "所属网格", sort: "grid", value: function (r) { return grid(r.grid); } },
      { label: "人数", sort: "people", value: function (r) { return r.people; } },
      { label: "户主", render: revealCell },
      { label: "电话", className: "gg-head-phone", value: function (r) { return r.head_phone || "—"; } },
      { label: "联户党员", value: function (r) { return r.linked_member || "—"; } },
      { label: "标签", tags: true, render: function (td, r) { tagsCell(td, r.tags); } }
    ],
    people: [
      { label: "网格编码", sort: "code", value: function (r) { return r.code; } },
      { label: "网格名称", sort: "name", value: function (r) { return r.name; } },
      { label: "上级", value: function (r) { return r.parent || "—"; } },
      { label: "户数", sort: "households", value: function (r) { return r.households; } },
      { label: "人口", sort: "people", value: function (r) { return r.people; } },
      { label: "党员联系户", value: function (r) { return r.linked_households; } },
      { label: "重点人群户", sort: "tagged", tags: true, value: function (r) { return r.tagged; } }
    ].concat(Object.keys(S.tags).map(function (code) {
      return { label: S.tags[code], tags: true, value: function (r) { return r.tags ? r.tags[code] : ""; } };
    })),
    workers: [
      { label: "编号", sort: "code", value: function (r) { return r.code || "—"; } },
      { label: "姓名", sort: "name", value: function (r) { return r.name; } },
      { label: "电话", value: function (r) { return r.phone || "—"; } },
      { label: "在岗", sort: "on_duty", value: function (r) { return yes(r.on_duty); } },
      { label: "岗位与网格", render: function (td, r) {
        r.assignments.forEach(function (a, i) {
          if (i) { td.appendChild(document.createElement("br")); }
          td.appendChild(document.createTextNode(a.role_name + "：" + a.grid.name));
        });
      } },
      { label: "联系住户", sort: "households", value: function (r) { return r.linked_households; } }
    ],
    points: [
      { label: "名称", sort: "name", value: function (r) { return r.name; } },
      { label: "类型", sort: "kind", value: function (r) { return r.kind_name; } },
      { label: "状态", sort: "status", value: function (r) { return r.status_name; } },
      { label: "服务半径（米）", sort: "radius", value: function (r) { return Math.round(r.radius_m); } },
      { label: "所属网格", sort: "grid", value: function (r) { return grid(r.grid); } },
      { label: "地址", value: function (r) { return r.address || "—"; } },
      { label: "地图", render: function (td, r) { if (r.grid) { mapLink(td, r.grid.id); } } }
    ],
    cameras: [
      { label: "编号", sort: "code", value: function (r) { return r.code; } },
      { label: "名称", sort: "name", value: function (r) { return r.name || "—"; } },
      { label: "类型", sort: "kind", value: function (r) { return r.kind_name; } },
      { label: "智能分析", value: function (r) { return yes(r.analytics); } },
      { label: "所属网格", sort: "grid", value: function (r) { return grid(r.grid); } },
      { label: "地图", render: function (td, r) { if (r.grid) { mapLink(td, r.grid.id); } } }
    ]
  };

  function mapLink(td, gridId) {
    var a = document.createElement("a");
    a.href = "/emap?grid=" + gridId;
    a.textContent = "在地图中查看";
    td.appendChild(a);
  }

  var columns = COLUMNS[S.kind].filter(function (c) { return !c.tags || S.sees_tags; });

  function filters() {
    var f = document.getElementById("ledger-filters"), q = new URLSearchParams();
    Array.prototype.forEach.call(f.elements, function (el) {
      if (el.name && el.value) { q.set(el.name, el.value.trim()); }
    });
    return q;
  }

  function header() {
    var tr = document.querySelector("#ledger-table thead tr");
    tr.textContent = "";
    columns.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c.label;
      if (c.sort) {
        th.setAttribute("data-sort", c.sort);
        if (state.sort === c.sort) { th.className = "gg-sort-" + state.order; }
        th.addEventListener("click", function () {
          state.order = state.sort === c.sort && state.order === "asc" ? "desc" : "asc";
          state.sort = c.sort;
          state.offset = 0;
          load();
        });
      }
      tr.appendChild(th);
    });
  }

  function load() {
    var q = filters();
    if (S.export) {
      [["ledger-export", "csv"], ["ledger-export-geojson", "geojson"]].forEach(function (x) {
        var e = new URLSearchParams({ format: x[1] });
        if (q.get("grid")) { e.set("grid", q.get("grid")); }
        var a = document.getElementById(x[0]);
        a.href = S.export + "?" + e;
        a.hidden = false;
      });
    }
    if (state.sort) { q.set("sort", state.sort); q.set("order", state.order); }
    q.set("limit", String(state.limit));
    q.set("offset", String(state.offset));
    header();
    return C.call("GET", S.api + "?" + q).then(function (res) {
      state.total = res.total;
      state.sort = res.sort;
      state.order = res.order;
      header();
      var body = document.querySelector("#ledger-table tbody");
      body.textContent = "";
      res.items.forEach(function (r) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-id", String(r.id));
        columns.forEach(function (c) {
          var td = document.createElement("td");
          if (c.className) { td.className = c.className; }
          if (c.render) { c.render(td, r); } else { var v = c.value(r); td.textContent = v == null ? "" : String(v); }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      if (!res.items.length) {
        var tr = document.createElement("tr"), td = document.createElement("td");
        td.colSpan = columns.length;
        td.textContent = "暂无记录";
        tr.appendChild(td);
        body.appendChild(tr);
      }
      var pages = Math.max(1, Math.ceil(res.total / state.limit));
      document.getElementById("ledger-page").textContent =
        "共 " + res.total + " 条，第 " + (Math.floor(state.offset / state.limit) + 1) + " / " + pages + " 页";
      document.getElementById("ledger-prev").disabled = state.offset === 0;
      document.getElementById("ledger-next").disabled = state.offset + state.limit >= res.total;
      document.getElementById("ledger-msg").textContent = "";
      document.documentElement.setAttribute("data-ledger-ready", "1");
    }).catch(function (err) {
      document.getElementById("ledger-msg").textContent = "查询失败：" + err.message;
      document.documentElement.setAttribute("data-ledger-ready", "1");
    });
  }

  function options(select, map) {
    if (!select) { return; }
    Object.keys(map).forEach(function (k) {
      var o = document.createElement("option");
      o.value = k;
      o.textContent = map[k];
      select.appendChild(o);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var f = document.getElementById("ledger-filters");
    var indent = { 1: "", 2: "　", 3: "　　", 4: "　　　", 5: "　　　　" };
    S.grids.forEach(function (g) {
      var o = document.createElement("option");
      o.value = String(g.id);
      o.textContent = (indent[g.level] || "") + g.name;
      f.grid.appendChild(o);
    });
    options(f.tag, S.tags);
    options(f.role, S.roles);
    Array.prototype.forEach.call(f.querySelectorAll("select[data-choices]"), function (s) {
      options(s, S[s.getAttribute("data-choices")]);
    });
    // Filters a link may carry (the same names as the API's).
    var params = new URLSearchParams(window.location.search);
    var linkedGrid = params.get("grid");
    if (linkedGrid && /^[0-9]{1,10}$/.test(linkedGrid) && !f.grid.querySelector('option[value="' + linkedGrid + '"]')) {
      var o = document.createElement("option");
      o.value = linkedGrid;
      o.textContent = "链接所指网格";
      f.grid.appendChild(o);
    }
    params.forEach(function (v, k) { if (f.elements[k]) { f.elements[k].value = v; } });
    if (["20", "50", "100", "200"].indexOf(params.get("limit")) >= 0) {
      state.limit = Number(params.get("limit"));
      document.getElementById("ledger-size").value = params.get("limit");
    }
    f.addEventListener("submit", function (ev) { ev.preventDefault(); state.offset = 0; load(); });
    document.getElementById("ledger-prev").addEventListener("click", function () {
      state.offset = Math.max(0, state.offset - state.limit); load();
    });
    document.getElementById("ledger-next").addEventListener("click", function () {
      state.offset += state.limit; load();
    });
    document.getElementById("ledger-size").addEventListener("change", function (ev) {
      state.limit = Number(ev.target.value); state.offset = 0; load();
    });
    load();
  });
})();
