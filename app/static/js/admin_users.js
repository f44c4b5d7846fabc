/* Account management for administrators: create accounts, disable or enable them, unlock,
 * reset a password, sign an account out everywhere — all through /api/users. */
(function () {
  "use strict";
  var msg = document.getElementById("users-msg");
  function say(text, bad) { msg.textContent = text; msg.className = bad ? "gg-error" : "gg-hint"; }
  function call(method, url, body) {
    return window.GridGovApi.call(method, url, body || {}).catch(function (e) {
      throw new Error(window.GridGovApi.text(e));
    });
  }
  document.getElementById("user-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = {};
    new FormData(ev.target).forEach(function (v, k) { if (v) { body[k] = v; } });
    call("POST", "/api/users", body).then(function (u) {
      say("已创建账号 " + u.username + "（" + u.role_name + "）");
      window.setTimeout(function () { window.location.reload(); }, 600);
    }).catch(function (e) { say("创建失败：" + e.message, true); });
  });
  document.getElementById("users").addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-act]");
    if (!button) { return; }
    var row = button.closest("tr"), id = row.getAttribute("data-id"), name = row.getAttribute("data-username");
    var act = button.getAttribute("data-act"), done;
    if (act === "disable" || act === "enable") {
      done = call("PATCH", "/api/users/" + id, { active: act === "enable" });
    } else if (act === "unlock") {
      done = call("PATCH", "/api/users/" + id, { unlock: true });
    } else if (act === "password") {
      var pw = window.prompt("为 " + name + " 设置新密码（至少 10 位，含两类字符）");
      if (!pw) { return; }
      done = call("PATCH", "/api/users/" + id, { password: pw });
    } else {
      done = call("POST", "/api/users/" + id + "/end-sessions");
    }
    done.then(function () {
      say(name + "：已完成（" + button.textContent + "）");
      window.setTimeout(function () { window.location.reload(); }, 600);
    }).catch(function (e) { say(name + "：" + e.message, true); });
  });
})();
