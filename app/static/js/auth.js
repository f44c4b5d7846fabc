/* Show who is signed in, with a sign-out button (the CSRF token itself travels by core.js). */
(function () {
  "use strict";
  var token = window.GridGovAuth.csrfToken;

  document.addEventListener("DOMContentLoaded", function () {
    var meta = document.querySelector('meta[name="gridgov-user"]');
    if (!meta || document.querySelector(".gg-userbox")) return;
    var box = document.createElement("div");
    box.className = "gg-userbox";
    var who = document.createElement("span");
    who.id = "gg-user";
    who.textContent = meta.getAttribute("content") + " ";
    var form = document.createElement("form");
    form.method = "post";
    form.action = "/logout";
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "csrf_token";
    hidden.value = token();
    var button = document.createElement("button");
    button.type = "submit";
    button.id = "gg-logout";
    button.textContent = "退出登录";
    form.appendChild(hidden);
    form.appendChild(button);
    box.appendChild(who);
    box.appendChild(form);
    document.body.appendChild(box);
  });
})();
