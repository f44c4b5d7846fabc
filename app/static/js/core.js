/* What every page's script shares; the shell loads it first on every page.
 *
 * - The session's CSRF token goes with every state-changing request to this site (fetch and
 *   XMLHttpRequest alike), and a request that finds the session ended sends the user to sign in.
 * - GridGovApi: calls to the app's API with one reading of their answers and errors, and the map
 *   layer that marks where a refused geometry goes wrong (an error's ``location``).
 * - GridGovText: what a person reads of an API error message, and HTML escaping. */
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
  function signedIn() { return !!document.querySelector('meta[name="gridgov-user"]'); }
  var leaving = false;  // on the way to the sign-in page
  // A page brought back from the back-forward cache left for the sign-in page once already.
  window.addEventListener("pageshow", function (e) { if (e.persisted) { leaving = false; } });
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
      // Once: a page whose requests all meet the ended session would otherwise start the same
      // navigation for each, each one cutting off the one before.
      if (response.status === 401 && sameOrigin(url) && signedIn() && !leaving) {
        leaving = true;
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
      }
      return response;
    });
  };
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

  /* What a person reads of an API error: the Chinese half of "中文 / English". */
  function chinese(message) {
    var text = String(message == null ? "" : message);
    var head = text.split(" / ")[0];
    return /[\u4e00-\u9fff]/.test(head) ? head : text;
  }
  function escape(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  window.GridGovText = { message: chinese, escape: escape };

  function options(method, body, headers) {
    var opts = { method: method || "GET", headers: Object.assign({ Accept: "application/json" }, headers || {}) };
    if (body instanceof FormData) {
      opts.body = body;
    } else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return opts;
  }
  function answer(r) {
    if (r.status === 204) { return { ok: r.ok, status: 204, body: null }; }
    return r.json().then(
      function (b) { return { ok: r.ok, status: r.status, body: b }; },
      function () { return { ok: false, status: r.status, body: null }; }
    );
  }

  /* Call the API and resolve with {ok, status, body} whatever it answers: ``body`` is the JSON
   * answer (null when there is none); a failed connection is status 0 with the reason as its
   * error. A FormData body goes as it is, anything else as JSON; ``headers`` are added. */
  function request(method, url, body, headers) {
    return fetch(url, options(method, body, headers)).then(answer, function (err) {
      return { ok: false, status: 0, body: { error: { message: String(err) } } };
    });
  }

  /* The Error of a refused answer: what a person reads of the server's message (its Chinese
   * half, else the status), with ``status`` and the server's ``error`` object (the whole
   * message, field, location, allowed …). */
  function failure(res) {
    var err = (res.body && res.body.error) || {};
    var e = new Error(err.message ? chinese(err.message) : ("请求失败（" + res.status + "）"));
    e.status = res.status;
    e.error = err;
    return e;
  }

  /* What a person reads of a refusal: the Chinese half of its message, and the actions that
   * are allowed when the refusal names them. */
  function text(e) {
    var allowed = e && e.error && e.error.allowed;
    return chinese(e && e.message) + (allowed ? "（当前可执行：" + (allowed.join("、") || "无") + "）" : "");
  }

  /* Call the API; resolve with its JSON answer, reject with the ``failure`` of a refusal (a
   * failed connection rejects with the browser's own TypeError). */
  function call(method, url, body, headers) {
    return fetch(url, options(method, body, headers)).then(answer).then(function (res) {
      if (!res.ok) { throw failure(res); }
      return res.body;
    });
  }

  /* A Leaflet layer marking where an error lies (its ``location`` GeoJSON), labelled with its
   * message; null when the error names no place. The caller adds it to its map. */
  function errorLayer(error) {
    if (!error || !error.location) { return null; }
    return L.geoJSON(error.location, {
      renderer: L.svg(),
      style: { color: "#d50000", weight: 3, fillColor: "#ff1744", fillOpacity: 0.35 },
      pointToLayer: function (_f, ll) {
        return L.circleMarker(ll, { renderer: L.svg(), radius: 9, color: "#d50000", weight: 3, fillOpacity: 0.4 });
      }
    }).bindTooltip(escape(error.message), { permanent: true, direction: "top", className: "gg-error-tip" });
  }

  window.GridGovApi = { request: request, call: call, failure: failure, text: text, errorLayer: errorLayer };
})();
