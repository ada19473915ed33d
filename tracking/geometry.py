"""Plane geometry for zones, in metres, without I/O.

A zone is small next to the Earth (a home, a school, a district), so each zone gets its own
local equirectangular projection centred on itself: within a few kilometres of the centre the
error is far below GPS accuracy, and a fix costs two multiplications to project. Shapes are
compiled once when a subject's zone set changes; the hot path only projects and measures.
Compiled shapes are msgspec Structs outside the garbage collector's view (gc=False): an ingest
worker keeps a million of them, and tracked objects would make every full collection pause
the worker for as long as it takes to visit them all.

Signed distance is negative inside a shape and positive outside, in metres from the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180.0
MAX_POLYGON_VERTICES = 500

LonLat = tuple[float, float]
Point = tuple[float, float]


class ShapeError(ValueError):
    """A shape that cannot be a zone; the message names the rule it breaks."""


class Projection(msgspec.Struct, frozen=True, gc=False):
    """Longitude/latitude to metres east/north of an origin."""

    lon0: float
    lat0: float
    kx: float
    ky: float

    @classmethod
    def centred_on(cls, lon: float, lat: float) -> Projection:
        return cls(lon, lat, METRES_PER_DEGREE * math.cos(math.radians(lat)), METRES_PER_DEGREE)

    def to_xy(self, lon: float, lat: float) -> Point:
        return ((lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky)


def _segment_distance(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    """Distance from point p to the segment a-b."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        return math.hypot(px - ax, py - ay)
    t = ((px - ax) * dx + (py - ay) * dy) / length2
    t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _orientation(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> int:
    value = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    return 0 if value == 0 else (1 if value > 0 else -1)


def _on_segment(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> bool:
    return min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by)


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether the closed segments a-b and c-d share a point (touching counts)."""
    o1 = _orientation(*a, *b, *c)
    o2 = _orientation(*a, *b, *d)
    o3 = _orientation(*c, *d, *a)
    o4 = _orientation(*c, *d, *b)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and _on_segment(*a, *b, *c))
        or (o2 == 0 and _on_segment(*a, *b, *d))
        or (o3 == 0 and _on_segment(*c, *d, *a))
        or (o4 == 0 and _on_segment(*c, *d, *b))
    )


@dataclass(frozen=True, slots=True)
class Circle:
    centre: LonLat
    radius_m: float

    def __post_init__(self) -> None:
        _check_lon_lat(self.centre, "centre")
        if not (self.radius_m > 0 and math.isfinite(self.radius_m)):
            raise ShapeError("radius_m must be a positive number of metres")

    def compile(self) -> CompiledCircle:
        return CompiledCircle(Projection.centred_on(*self.centre), self.radius_m)


class CompiledCircle(msgspec.Struct, frozen=True, gc=False):
    projection: Projection
    radius_m: float

    def signed_distance(self, lon: float, lat: float) -> float:
        x, y = self.projection.to_xy(lon, lat)
        return math.hypot(x, y) - self.radius_m

    def segment_enters(self, a: LonLat, b: LonLat) -> bool:
        """Whether the straight path from a to b passes through the inside."""
        ax, ay = self.projection.to_xy(*a)
        bx, by = self.projection.to_xy(*b)
        return _segment_distance(0.0, 0.0, ax, ay, bx, by) <= self.radius_m


@dataclass(frozen=True, slots=True)
class Polygon:
    """A GeoJSON polygon's outer ring: [[lon, lat], ...], first position repeated last."""

    ring: tuple[LonLat, ...]

    def __post_init__(self) -> None:
        validate_ring(self.ring)

    def compile(self) -> CompiledPolygon:
        return CompiledPolygon.from_ring(self.ring)


class CompiledPolygon(msgspec.Struct, frozen=True, gc=False):
    projection: Projection
    points: tuple[Point, ...]  # closed: points[0] == points[-1]
    bbox: tuple[float, float, float, float]

    @classmethod
    def from_ring(cls, ring: Sequence[LonLat]) -> CompiledPolygon:
        """Compile a ring validated before (when the zone was saved): the ingest path compiles
        every device it meets and must not repeat the quadratic self-intersection check."""
        vertices = ring[:-1]
        lon0 = sum(p[0] for p in vertices) / len(vertices)
        lat0 = sum(p[1] for p in vertices) / len(vertices)
        projection = Projection.centred_on(lon0, lat0)
        points = tuple(projection.to_xy(*p) for p in ring)
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        return cls(projection, points, (min(xs), min(ys), max(xs), max(ys)))

    def contains_xy(self, x: float, y: float) -> bool:
        """Even-odd ray casting; a point on the boundary may fall either way (distance 0)."""
        inside = False
        points = self.points
        x1, y1 = points[0]
        for x2, y2 in points[1:]:
            if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
                inside = not inside
            x1, y1 = x2, y2
        return inside

    def boundary_distance_xy(self, x: float, y: float) -> float:
        points = self.points
        best = math.inf
        x1, y1 = points[0]
        for x2, y2 in points[1:]:
            d = _segment_distance(x, y, x1, y1, x2, y2)
            if d < best:
                best = d
            x1, y1 = x2, y2
        return best

    def signed_distance(self, lon: float, lat: float, *, beyond: float = math.inf) -> float:
        """Signed distance; any point farther than `beyond` outside the bounding box is reported
        as just that far, which is all a caller asking "is it beyond my band?" needs."""
        x, y = self.projection.to_xy(lon, lat)
        min_x, min_y, max_x, max_y = self.bbox
        gap = max(min_x - x, x - max_x, min_y - y, y - max_y)
        if gap > beyond:
            return gap
        distance = self.boundary_distance_xy(x, y)
        return -distance if self.contains_xy(x, y) else distance

    def segment_enters(self, a: LonLat, b: LonLat) -> bool:
        pa = self.projection.to_xy(*a)
        pb = self.projection.to_xy(*b)
        min_x, min_y, max_x, max_y = self.bbox
        if (
            max(pa[0], pb[0]) < min_x
            or min(pa[0], pb[0]) > max_x
            or max(pa[1], pb[1]) < min_y
            or min(pa[1], pb[1]) > max_y
        ):
            return False
        if self.contains_xy(*pa) or self.contains_xy(*pb):
            return True
        points = self.points
        return any(segments_intersect(pa, pb, points[i], points[i + 1]) for i in range(len(points) - 1))


CompiledShape = CompiledCircle | CompiledPolygon


def _check_lon_lat(position: Sequence[float], name: str) -> None:
    if len(position) != 2:
        raise ShapeError(f"{name} must be [longitude, latitude]")
    lon, lat = position
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ShapeError(f"{name} must hold finite numbers")
    if not -180.0 <= lon <= 180.0:
        raise ShapeError(f"{name} longitude must be between -180 and 180")
    if not -90.0 <= lat <= 90.0:
        raise ShapeError(f"{name} latitude must be between -90 and 90")


def validate_ring(ring: Sequence[LonLat]) -> None:
    """A usable outer ring: closed, 3 to 500 distinct vertices, an area, no self-intersection."""
    if len(ring) < 4:
        raise ShapeError("a polygon ring needs at least 4 positions (3 vertices and the closing one)")
    for index, position in enumerate(ring):
        _check_lon_lat(position, f"ring[{index}]")
    if tuple(ring[0]) != tuple(ring[-1]):
        raise ShapeError("the ring is not closed: the last position must repeat the first")
    vertices = len(ring) - 1
    if vertices > MAX_POLYGON_VERTICES:
        raise ShapeError(f"the ring has {vertices} vertices; at most {MAX_POLYGON_VERTICES} are allowed")
    for i in range(vertices):
        if tuple(ring[i]) == tuple(ring[i + 1]):
            raise ShapeError(f"ring[{i}] and ring[{i + 1}] are the same position")
    projection = Projection.centred_on(ring[0][0], ring[0][1])
    points = [projection.to_xy(lon, lat) for lon, lat in ring]
    area2 = sum(points[i][0] * points[i + 1][1] - points[i + 1][0] * points[i][1] for i in range(vertices))
    if abs(area2) < 1e-6:
        raise ShapeError("the ring encloses no area")
    # Every pair of edges that are not neighbours must not meet. 500 vertices is 125,000 pairs:
    # a fraction of a second, paid once when an officer saves the zone.
    for i in range(vertices):
        a, b = points[i], points[i + 1]
        for j in range(i + 1, vertices):
            if j == i + 1 or (i == 0 and j == vertices - 1):
                continue  # neighbours share a vertex by construction
            if segments_intersect(a, b, points[j], points[j + 1]):
                raise ShapeError(f"the ring intersects itself: edge {i} crosses edge {j}")
