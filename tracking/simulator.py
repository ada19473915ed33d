"""A device simulator: virtual ankle monitors walking through the demo city.

Each device roams within a kilometre of home, goes home for the night curfew, takes a fix
every few seconds with GPS noise and uploads its buffered fixes every reporting interval, now
and then late (after the next batch) or twice. On demand, some devices walk into the place
they must keep away from, stay out past curfew, go dark, or have their strap cut, so that
every kind of alert can be seen flowing through the system.

    casemgr tracking simulate --devices-file .data/demo-devices.json --enter-zone 2 --break-curfew 2
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import structlog

from casemgr.config import Settings
from casemgr.monitoring.demo import DemoDevice

log = structlog.get_logger(__name__)
_LOCAL = ZoneInfo("Asia/Shanghai")
_WALK_MPS = 1.4
_SCOOTER_MPS = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices-file", default=".data/demo-devices.json")
    parser.add_argument("--url", help="the tracking service (default: its configured host and port)")
    parser.add_argument("--devices", type=int, default=0, help="how many of the file's devices (0: all)")
    parser.add_argument(
        "--seconds", type=float, default=0, help="stop after this long (0: run until stopped)"
    )
    parser.add_argument("--fix-every", type=float, default=5.0, help="seconds between fixes")
    parser.add_argument(
        "--enter-zone", type=int, default=0, help="devices that walk into their exclusion zone"
    )
    parser.add_argument("--break-curfew", type=int, default=0, help="devices that stay away from home")
    parser.add_argument("--go-dark", type=int, default=0, help="devices that stop uploading")
    parser.add_argument("--cut-strap", type=int, default=0, help="devices whose strap is cut")
    parser.add_argument("--late", type=float, default=0.05, help="share of uploads held back and sent late")
    parser.add_argument("--duplicate", type=float, default=0.05, help="share of uploads sent twice")
    parser.add_argument("--noise-m", type=float, default=8.0, help="GPS noise (standard deviation, metres)")


def _offset(point: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    lon, lat = point
    return lon + east_m / (111_195.0 * math.cos(math.radians(lat))), lat + north_m / 111_195.0


def _metres(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (b[0] - a[0]) * 111_195.0 * math.cos(math.radians(a[1])), (b[1] - a[1]) * 111_195.0


def in_curfew(now: datetime) -> bool:
    hour = now.astimezone(_LOCAL).hour
    return hour >= 22 or hour < 6


@dataclass(slots=True)
class VirtualDevice:
    spec: DemoDevice
    rng: random.Random
    mode: str = "normal"  # normal | enter_zone | break_curfew | dark | cut_strap
    position: tuple[float, float] = (0.0, 0.0)
    target: tuple[float, float] = (0.0, 0.0)
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    held: list[list[dict[str, Any]]] = field(default_factory=list)
    battery: float = 100.0

    def __post_init__(self) -> None:
        self.position = self.target = self.spec.home

    def _choose_target(self, now: datetime) -> tuple[float, float]:
        if self.mode == "enter_zone":
            return self.spec.keep_away
        if self.mode == "break_curfew":
            return _offset(self.spec.home, 900, 600)
        if in_curfew(now):
            return self.spec.home
        while True:
            angle, distance = self.rng.uniform(0, 2 * math.pi), self.rng.uniform(100, 1000)
            candidate = _offset(self.spec.home, distance * math.cos(angle), distance * math.sin(angle))
            east, north = _metres(self.spec.keep_away, candidate)
            if math.hypot(east, north) > self.spec.keep_away_radius_m + 300:
                return candidate

    def step(self, seconds: float, now: datetime) -> None:
        east, north = _metres(self.position, self.target)
        distance = math.hypot(east, north)
        # The demo's rule-breakers take a scooter, so their alerts show within minutes.
        travel = (_WALK_MPS if self.mode == "normal" else _SCOOTER_MPS) * seconds
        if distance <= travel:
            self.position = self.target
            self.target = self._choose_target(now)
        else:
            self.position = _offset(self.position, east / distance * travel, north / distance * travel)
        self.battery = max(3.0, self.battery - seconds * 0.0005)

    def fix(self, now: datetime) -> dict[str, Any]:
        self.seq += 1
        lon, lat = _offset(self.position, self.rng.gauss(0, 8.0), self.rng.gauss(0, 8.0))
        return {
            "device_id": self.spec.device_id,
            "seq": self.seq,
            "fix_time": now.isoformat(),
            "latitude": lat,
            "longitude": lon,
            "accuracy_m": round(self.rng.uniform(5, 20), 1),
            "speed_mps": _WALK_MPS,
            "battery_percent": int(self.battery),
            "strap_state": "cut" if self.mode == "cut_strap" else "intact",
        }


async def _upload(client: httpx.AsyncClient, device: VirtualDevice, batch: list[dict[str, Any]]) -> None:
    for attempt in range(3):  # as a device does: a kept-alive connection may have been closed
        try:
            response = await _post(client, device, batch)
            break
        except httpx.TransportError as e:
            if attempt == 2:
                log.warning("upload_failed", device_id=device.spec.device_id, error_type=type(e).__name__)
                return
            await asyncio.sleep(0.5)
    if response.status_code != 202:
        log.warning("upload_refused", device_id=device.spec.device_id, status=response.status_code)


async def _post(
    client: httpx.AsyncClient, device: VirtualDevice, batch: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post(
        "/v1/pings",
        content=msgspec.json.encode(batch),
        headers={
            "Content-Type": "application/json",
            "X-Device-Id": device.spec.device_id,
            "Authorization": f"Bearer {device.spec.secret}",
        },
    )


async def _run_device(
    client: httpx.AsyncClient, device: VirtualDevice, args: argparse.Namespace, stop_at: float
) -> None:
    next_upload = time.monotonic() + device.rng.uniform(0, device.spec.interval_s)
    while time.monotonic() < stop_at:
        now = datetime.now(UTC)
        device.step(args.fix_every, now)
        device.buffer.append(device.fix(now))
        if time.monotonic() >= next_upload and device.mode != "dark":
            batch, device.buffer = device.buffer, []
            if device.rng.random() < args.late:
                device.held.append(batch)  # the network dropped it; it goes with the next one
            else:
                await _upload(client, device, batch)
                for late in device.held:
                    await _upload(client, device, late)
                device.held.clear()
                if device.rng.random() < args.duplicate:
                    await _upload(client, device, batch)
            next_upload += device.spec.interval_s
        await asyncio.sleep(args.fix_every)


async def run_simulator(settings: Settings, specs: list[DemoDevice], args: argparse.Namespace) -> int:
    if args.devices:
        specs = specs[: args.devices]
    rng = random.Random(7)
    devices = [VirtualDevice(spec, random.Random(rng.random())) for spec in specs]
    modes = (
        ["enter_zone"] * args.enter_zone
        + ["break_curfew"] * args.break_curfew
        + ["dark"] * args.go_dark
        + ["cut_strap"] * args.cut_strap
    )
    for device, mode in zip(devices, modes, strict=False):
        device.mode = mode
        device.target = device._choose_target(datetime.now(UTC))
    url = args.url or f"http://{settings.tracking_host}:{settings.tracking_port}"
    stop_at = time.monotonic() + (args.seconds or math.inf)
    print(f"simulating {len(devices)} devices against {url}; special: {modes or 'none'}")
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(*(_run_device(client, d, args, stop_at) for d in devices))
    return 0
