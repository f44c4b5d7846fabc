/* A resident's page: the state of a case by its code; rate it once it is verified. */
(function () {
  "use strict";
  var C = window.Cases;

  function render(c) {
    var steps = c.timeline.map(function (t) {
      return "<li>" + C.time(t.at) + " " + C.esc(t.action_name) + " → " + C.esc(t.status_name) + (t.note ? "：" + C.esc(t.note) : "") + "</li>";
    }).join("");
    var html = '<section class="gg-case" data-status="' + C.esc(c.status) + '"><h3>' + C.esc(c.code) + " " + C.badge(c) + "</h3>" +
      "<p>" + C.esc(c.category_name) + (c.grid ? " · " + C.esc(c.grid.name) : "") + "</p><p>" + C.esc(c.description) + "</p>" +
      "<p>上报时间 " + C.time(c.created_at) + " · 处置时限 " + C.time(c.deadline) + "</p>" +
      c.photos.map(function (u) { return '<img class="gg-thumb" src="' + C.esc(u) + '" alt="照片">'; }).join("") +
      '<ol class="gg-events">' + steps + "</ol>";
    if (c.can_rate) {
      html += '<form id="rate-form"><fieldset><legend>满意度评价</legend>' + [5, 4, 3, 2, 1].map(function (n) {
        return '<label><input type="radio" name="satisfaction" value="' + n + '"' + (n === 5 ? " checked" : "") + "> " + "★★★★★".slice(0, n) + "</label>";
      }).join(" ") + "</fieldset>" +
        '<fieldset><legend>问题是否解决</legend><label><input type="radio" name="solved" value="true" checked> 已解决</label>' +
        '<label><input type="radio" name="solved" value="false"> 未解决</label></fieldset>' +
        '<label>上报凭证或上报电话 <input name="proof" autocomplete="off" required value="' + C.esc(secretFromLink()) + '"></label>' +
        '<textarea name="note" placeholder="意见建议（选填）"></textarea><button type="submit">提交评价</button></form>';
    } else if (c.status === "closed") {
      html += '<p class="gg-rated">已结案' + (c.satisfaction ? "，满意度 " + "★★★★★".slice(0, c.satisfaction) : "") +
        (c.solved === true ? "，问题已解决" : c.solved === false ? "，问题未解决" : "") + "</p>";
    }
    document.getElementById("case-status").innerHTML = html + '<p class="gg-msg"></p></section>';
    var form = document.getElementById("rate-form");
    if (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = {
          satisfaction: Number(form.querySelector("input[name=satisfaction]:checked").value),
          solved: form.querySelector("input[name=solved]:checked").value === "true",
          note: form.note.value || null,
          version: c.version
        };
        // The secret from the report's answer, or the phone given with the report: the server
        // tries the value as either.
        var proof = form.proof.value.trim();
        body.secret = proof;
        body.phone = proof;
        C.call("POST", "/api/public/cases/" + encodeURIComponent(c.code) + "/rate", body).then(render)
          .catch(function (err) { document.querySelector("#case-status .gg-msg").textContent = err.message; });
      });
    }
  }

  // A link from the report's answer may carry the secret after '#secret=' (never sent to a server).
  function secretFromLink() {
    var m = /(?:^#|&)secret=([^&]+)/.exec(location.hash || "");
    return m ? decodeURIComponent(m[1]) : "";
  }

  function lookup(code) {
    if (!code) { return Promise.resolve(); }
    return C.call("GET", "/api/public/cases/" + encodeURIComponent(code)).then(render)
      .catch(function (err) { document.getElementById("case-status").innerHTML = '<p class="gg-msg">' + C.esc(err.message) + "</p>"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("lookup").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var code = document.getElementById("case-code").value.trim();
      history.replaceState(null, "", "?code=" + encodeURIComponent(code) + (location.hash || ""));
      lookup(code);
    });
    lookup(document.getElementById("case-code").value.trim()).then(function () {
      document.documentElement.setAttribute("data-track-ready", "1");
    });
  });
})();
