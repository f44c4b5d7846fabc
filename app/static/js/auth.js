/* Send the session's CSRF token with every state-changing request to this site, and show who is
 * signed in with a sign-out button. Loaded first on every page. */
(function () {
  "use strict";
  function token() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  var SAFE = { GET: 1, HEAD: 1, OPTIONS: 1 };
  var nativeFetch = window.fetch.bind(window);
  function sameOrigin(url) {
    try { return new URL(url, window.location.href).origin === window.location.origin; }
    catch (e) { return false; }
  }
  window.fetch = function (input, init) {
    init = init || {};
    var method = (init.method || (input && input.method) || "GET").toUpperCase();
    var url = typeof input === "string" ? input : (input && input.url) || "";
    if (!SAFE[method] && sameOrigin(url) && token()) {
      var headers = new Headers(init.headers || (input && input.headers) || {});
      if (!headers.has("X-CSRF-Token")) headers.set("X-CSRF-Token", token());
      init = Object.assign({}, init, { headers: headers, credentials: "same-origin" });
    }
    return nativeFetch(input, init).then(function (response) {
      // The session ran out (idle or absolute timeout, or ended elsewhere): sign in again.
      if (response.status === 401 && sameOrigin(url) && signedIn()) {
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
      }
      return response;
    });
  };
  function signedIn() { return !!document.querySelector('meta[name="gridgov-user"]'); }
  var nativeOpen = XMLHttpRequest.prototype.open;
  var nativeSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    this._ggUnsafe = !SAFE[String(method).toUpperCase()] && sameOrigin(url);
    return nativeOpen.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    if (this._ggUnsafe && token()) this.setRequestHeader("X-CSRF-Token", token());
    return nativeSend.apply(this, arguments);
  };
  window.GridGovAuth = { csrfToken: token };

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
