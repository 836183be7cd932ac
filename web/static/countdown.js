/* Live countdown for the candidate pages (progressive enhancement).
 *
 * The server renders the time left (data-remaining, in seconds) and stays the authority: this
 * script only counts down from it with the monotonic clock (performance.now, immune to changes
 * of the device's clock) and, at zero, loads data-expire-url, where the server decides.
 * Screen readers hear the time through a polite live region only at sensible moments (WCAG
 * 2.2.1 / 4.1.3): on whole multiples of 5 minutes, then at 2 and 1 minute(s), 30 and 10
 * seconds, and when time is up; the visible clock ticks every second without announcing.
 */
(function () {
  "use strict";
  var ANNOUNCE_AT = [120, 60, 30, 10];

  function phrase(el, seconds) {
    if (seconds >= 120) {
      return el.dataset.minuteMany.replace("{n}", String(Math.round(seconds / 60)));
    }
    if (seconds >= 60) { return el.dataset.minuteOne.replace("{n}", "1"); }
    return el.dataset.secondMany.replace("{n}", String(seconds));
  }

  function start(el) {
    var remaining = parseInt(el.dataset.remaining, 10);
    if (!(remaining >= 0)) { return; }
    var end = performance.now() + remaining * 1000;
    var time = el.querySelector("[data-clock-time]");
    var live = el.querySelector("[data-clock-announce]");
    var stale = el.querySelector("[data-clock-static]");
    if (stale) { stale.hidden = true; }
    var lastAnnounced = null;

    function tick() {
      var left = Math.max(0, Math.ceil((end - performance.now()) / 1000));
      time.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      var due = (left > 120 && left % 300 === 0) || ANNOUNCE_AT.indexOf(left) >= 0;
      if (due && left !== lastAnnounced && left !== remaining) {
        live.textContent = phrase(el, left);
        lastAnnounced = left;
      }
      if (left <= 0) {
        live.textContent = el.dataset.ended;
        el.classList.add("ended");
        // Let the server decide (it closes the session or ends the break), after a moment so
        // that the announcement can be heard.
        window.setTimeout(function () { window.location.assign(el.dataset.expireUrl); }, 1500);
        return;
      }
      window.setTimeout(tick, 1000 - ((end - performance.now()) % 1000 + 1000) % 1000 || 1000);
    }
    tick();
  }

  document.querySelectorAll("[data-countdown]").forEach(start);
})();
