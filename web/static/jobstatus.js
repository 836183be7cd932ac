/* Progress of a running calibration job without reloading the page (replaces meta-refresh,
 * which WCAG 2.2.1 / axe "meta-refresh" forbid): polls the job's JSON every 2 s, updates the
 * progress bar and message, announces status changes politely, and shows the finished page
 * once the job has ended. Without JavaScript the page has a Refresh link. */
(function () {
  "use strict";
  var box = document.querySelector("[data-job-status]");
  if (!box) { return; }
  var bar = box.querySelector("progress");
  var message = box.querySelector("[data-job-message]");
  var announce = box.querySelector("[data-job-announce]");
  var lastStatus = null;

  function poll() {
    fetch(box.dataset.jobStatus, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (job) {
        if (typeof job.progress === "number") { bar.value = job.progress; bar.textContent = Math.round(job.progress * 100) + " %"; }
        if (job.message) { message.textContent = job.message; }
        if (job.status !== lastStatus && lastStatus !== null) { announce.textContent = "Status: " + job.status; }
        lastStatus = job.status;
        if (job.status === "queued" || job.status === "running") { window.setTimeout(poll, 2000); }
        else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();
