"""Intel RAPL powercap: counter deltas, wrap-around, zones counted in the total, unreadable files."""

from __future__ import annotations

import os

import pytest

from edge.device import power
from edge.device.power import RaplSource, TotalBasis, counter_delta, find_rapl_zones
from edge.errors import EdgeError
from tests.power.fakesys import RAPL_MAX_RANGE_UJ, FakeClock, make_rapl, make_rapl_zone, write


def test_counter_delta_without_and_with_wrap():
    assert counter_delta(100, 350, 1000) == 250
    assert counter_delta(900, 150, 1000) == 250


def test_first_read_primes_then_power_is_energy_over_time(tmp_path):
    zones = make_rapl(tmp_path, package_uj=1_000_000, dram_uj=500_000)
    clock = FakeClock(10.0)
    source = RaplSource(tmp_path, clock=clock)
    assert source.available()
    assert source.read() is None
    write(zones["package"] / "energy_uj", 1_000_000 + 3_000_000)  # 3 J over 0.5 s
    write(zones["core"] / "energy_uj", 300_000 + 1_000_000)
    write(zones["dram"] / "energy_uj", 500_000 + 250_000)
    clock.advance(0.5)
    sample = source.read()
    assert sample.rails_w == pytest.approx({"package-0": 6.0, "package-0/core": 2.0, "package-0/dram": 0.5})
    assert sample.total_w == pytest.approx(6.5)  # package + dram; core is inside the package
    assert sample.basis is TotalBasis.CPU_PACKAGES
    assert sample.t == pytest.approx(10.25)  # the middle of the counting interval


def test_wrap_around_uses_max_energy_range(tmp_path):
    make_rapl_zone(tmp_path, "intel-rapl:0", "package-0", RAPL_MAX_RANGE_UJ - 500_000, RAPL_MAX_RANGE_UJ)
    clock = FakeClock()
    source = RaplSource(tmp_path, clock=clock)
    assert source.read() is None
    write(tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj", 1_500_000)  # wrapped past the range
    clock.advance(1.0)
    assert source.read().total_w == pytest.approx(2.0)


def test_psys_counts_only_without_packages(tmp_path):
    make_rapl(tmp_path)
    make_rapl_zone(tmp_path, "intel-rapl:1", "psys", 0, RAPL_MAX_RANGE_UJ)
    counted = {z.name for z in find_rapl_zones(tmp_path) if z.counts_in_total}
    assert counted == {"package-0", "package-0/dram"}


def test_psys_alone_is_the_total(tmp_path):
    make_rapl_zone(tmp_path, "intel-rapl:0", "psys", 0, RAPL_MAX_RANGE_UJ)
    assert [z.counts_in_total for z in find_rapl_zones(tmp_path)] == [True]


def permission_denied_for_energy(monkeypatch):
    """energy_uj is mode 0400 on real systems; tests may run as root, so deny it at the read."""
    real_read = power.read_sysfs_text

    def read(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(power, "read_sysfs_text", read)


def test_unreadable_energy_says_root_or_udev(tmp_path, monkeypatch):
    make_rapl(tmp_path)
    permission_denied_for_energy(monkeypatch)
    source = RaplSource(tmp_path)
    availability = source.available()
    assert not availability
    assert "needs root or a udev rule" in availability.reason
    assert "energy_uj" in availability.reason
    with pytest.raises(EdgeError, match="needs root or a udev rule"):
        source.read()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files")
def test_unreadable_energy_by_file_mode(tmp_path):
    zones = make_rapl(tmp_path)
    (zones["package"] / "energy_uj").chmod(0o000)
    assert "needs root or a udev rule" in RaplSource(tmp_path).available().reason


def test_no_powercap_is_unavailable(tmp_path):
    availability = RaplSource(tmp_path).available()
    assert not availability and "no RAPL zones" in availability.reason
