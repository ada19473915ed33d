// The map of a subject: the order's zones and the last day's track, drawn by Leaflet (vendored)
// on their own, over tiles only when the deployment names a tile server (data-tiles). Data come
// from the page's data-source, a JSON read that is audited with the purpose stated.
document.addEventListener("DOMContentLoaded", function () {
  var element = document.getElementById("map");
  if (!element || !window.L) return;
  var map = L.map(element, { attributionControl: false });
  // With no base map, a scale bar is what tells distances apart.
  L.control.scale({ imperial: false }).addTo(map);
  element._casemgrMap = map;
  var tiles = element.getAttribute("data-tiles");
  if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
  fetch(element.getAttribute("data-source"), { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.json();
    })
    .then(function (data) {
      var layers = [];
      // Circles need the map's projection: a view first, the zones' bounds after.
      var first = data.zones.length ? data.zones[0].shape : null;
      var centre = first && first.type === "circle" ? [first.centre[1], first.centre[0]]
        : first ? [first.coordinates[0][0][1], first.coordinates[0][0][0]]
        : data.track.length ? [data.track[0][2], data.track[0][1]] : [31.23, 121.47];
      map.setView(centre, 14);
      data.zones.forEach(function (zone) {
        var exclusion = zone.kind === "exclusion";
        var style = {
          color: exclusion ? "#a61b1b" : "#1d7a3a", weight: 2, fillOpacity: 0.15,
          className: "zone zone-" + zone.kind
        };
        var shape = zone.shape;
        var layer = shape.type === "circle"
          ? L.circle([shape.centre[1], shape.centre[0]], Object.assign({ radius: shape.radius_m }, style))
          : L.polygon(shape.coordinates[0].map(function (p) { return [p[1], p[0]]; }), style);
        layer.bindTooltip(zone.label);
        layers.push(layer.addTo(map));
      });
      var points = data.track.map(function (fix) { return [fix[2], fix[1]]; });
      if (points.length) {
        layers.push(L.polyline(points, { color: "#1554a6", weight: 3, className: "track" }).addTo(map));
        layers.push(L.circleMarker(points[points.length - 1], {
          radius: 7, color: "#1554a6", fillOpacity: 1, className: "last-fix"
        }).addTo(map));
      }
      if (layers.length) map.fitBounds(L.featureGroup(layers).getBounds().pad(0.2));
      element.setAttribute("data-drawn", String(layers.length));
      element.dispatchEvent(new Event("casemgr:map-ready"));
    })
    .catch(function (error) { element.setAttribute("data-error", error.message); });
});

// The zone editor under the map: clicks set a circle's centre or add a polygon's corners to the
// form's text fields (which can be typed into as well), with a preview on the map.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("zone-form");
  var element = document.getElementById("map");
  if (!form || !element) return;
  var preview = null;
  function map() { return element._casemgrMap; }
  function clear() {
    if (preview && map()) map().removeLayer(preview);
    preview = null;
  }
  function draw() {
    clear();
    if (!map()) return;
    var shape = form.querySelector("input[name=shape]:checked").value;
    if (shape === "circle") {
      var centre = form.centre.value.split(",").map(Number);
      if (centre.length === 2 && !isNaN(centre[0]) && !isNaN(centre[1])) {
        preview = L.circle([centre[1], centre[0]], { radius: Number(form.radius_m.value) || 1, dashArray: "4", className: "preview" }).addTo(map());
      }
    } else {
      var corners = form.points.value.split(";").filter(Boolean).map(function (p) {
        var c = p.split(",").map(Number); return [c[1], c[0]];
      });
      if (corners.length) preview = L.polygon(corners, { dashArray: "4", className: "preview" }).addTo(map());
    }
  }
  element.addEventListener("casemgr:map-ready", function () {
    map().on("click", function (event) {
      var here = event.latlng.lng.toFixed(6) + "," + event.latlng.lat.toFixed(6);
      if (form.querySelector("input[name=shape]:checked").value === "circle") form.centre.value = here;
      else form.points.value = form.points.value ? form.points.value + ";" + here : here;
      draw();
    });
  });
  ["input", "change"].forEach(function (kind) { form.addEventListener(kind, draw); });
  document.getElementById("zone-clear").addEventListener("click", function () {
    form.centre.value = ""; form.points.value = ""; clear();
  });
});
