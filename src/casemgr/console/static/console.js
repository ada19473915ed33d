// The console's only script (the Content-Security-Policy allows no inline one).
// Live alert inbox: the server's event stream (the session cookie goes with EventSource);
// each alert event fetches the inbox again and htmx swaps it in, so new alerts appear without
// a reload, and the browser reconnects with Last-Event-ID by itself.
document.addEventListener("DOMContentLoaded", function () {
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) return;
  var source = new EventSource(live.getAttribute("data-live"));
  source.addEventListener("alert", function () {
    htmx.ajax("GET", window.location.pathname, { target: "#alerts", select: "#alerts", swap: "outerHTML" });
  });
});
