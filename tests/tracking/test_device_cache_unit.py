"""The ingest workers' device cache on its own: bounded, oldest out first, and out of the garbage
collector's view whatever it holds."""

from __future__ import annotations

import gc

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tracking.device_cache import DeviceCache


class Untracked(msgspec.Struct, frozen=True, gc=False):
    version: int
    zones: tuple[float, ...] = ()


def test_a_full_cache_drops_the_device_put_in_first() -> None:
    cache: DeviceCache[Untracked] = DeviceCache(2)
    cache.put("a", Untracked(1))
    cache.put("b", Untracked(1))
    cache.put("a", Untracked(2))  # a new version keeps its place
    cache.put("c", Untracked(1))
    assert cache.devices() == ["b", "c"]
    assert cache.get("a") is None
    assert cache.get("b") == Untracked(1)


def test_a_forgotten_device_reads_as_absent_and_comes_back_in_its_place() -> None:
    cache: DeviceCache[Untracked] = DeviceCache(2)
    cache.put("a", Untracked(1))
    cache.put("b", Untracked(1))
    cache.forget("a")
    cache.forget("never-seen")
    assert cache.get("a") is None
    assert cache.devices() == ["b"]
    cache.put("a", Untracked(3))
    assert len(cache) == 2
    assert cache.devices() == ["a", "b"]
    cache.put("c", Untracked(1))  # "a" is still the oldest
    assert cache.devices() == ["b", "c"]


def test_holding_a_million_structs_it_stays_out_of_full_collections() -> None:
    # The point of the cache: a tracked dict of a million entries made every full collection of
    # an ingest worker walk all of them (casemgr/collector.py collects every ten minutes).
    cache: DeviceCache[Untracked] = DeviceCache(1_000_000)
    for n in range(1_000_000):
        cache.put(f"d{n}", Untracked(n, (1.5, 2.5)))
    assert cache.untracked()
    assert not any(o is cache._entries for o in gc.get_objects())


def test_a_value_the_collector_tracks_is_refused() -> None:
    cache: DeviceCache[object] = DeviceCache(2)
    with pytest.raises(TypeError, match="does not track"):
        cache.put("a", [1, 2])
    assert cache.untracked()


def test_a_cache_holds_at_least_one_device() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DeviceCache(0)


@given(
    size=st.integers(1, 5),
    steps=st.lists(st.tuples(st.sampled_from(["put", "forget"]), st.integers(0, 9)), max_size=60),
)
def test_it_behaves_as_a_first_in_first_out_list_of_devices(size: int, steps: list[tuple[str, int]]) -> None:
    cache: DeviceCache[Untracked] = DeviceCache(size)
    model: list[str] = []  # the devices held, oldest first
    forgotten: set[str] = set()
    for version, (action, n) in enumerate(steps):
        device = f"d{n}"
        if action == "put":
            if device not in model:
                if len(model) >= size:
                    forgotten.discard(model.pop(0))
                model.append(device)
            forgotten.discard(device)
            cache.put(device, Untracked(version))
        elif device in model:
            forgotten.add(device)
            cache.forget(device)
        assert len(cache) == len(model) <= size
        assert cache.devices() == [d for d in model if d not in forgotten]
    assert cache.untracked()
