// Small behaviours shared by every page. No inline scripts: the Content-Security-Policy forbids them.
(function () {
  "use strict";
  // Countdowns: <span class="countdown" data-due="ISO-8601">. Updated every 30 s; overdue turns red.
  function fmt(ms) {
    var neg = ms < 0; ms = Math.abs(ms);
    var h = Math.floor(ms / 3600000), m = Math.floor((ms % 3600000) / 60000);
    var s = (h ? h + "h " : "") + m + "m";
    return neg ? s : s;
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var left = Date.parse(el.dataset.due) - now;
      var over = el.dataset.overdueLabel || "overdue", leftLabel = el.dataset.leftLabel || "left";
      el.textContent = left < 0 ? over + " " + fmt(left) : fmt(left) + " " + leftLabel;
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 2 * 3600000);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 30000);
})();
