/* The public points page: the print button (the page itself is rendered on the server). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("public-print");
    if (button) { button.addEventListener("click", function () { window.print(); }); }
  });
}());
