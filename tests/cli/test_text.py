from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from binglide.cli.text import (
    SPARK_CHARS,
    chi_square_upper_tail,
    diff_text,
    entropy_profile_text,
    histogram_text,
    human_bytes,
    parse_offset,
    parse_range,
    sparkline,
    stats_text,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("4096", 4096),
        ("0x1000", 4096),
        ("0X1a2B", 0x1A2B),
        ("4K", 4096),
        ("4k", 4096),
        ("4KiB", 4096),
        ("4KB", 4096),
        ("1.5M", 1572864),
        ("1.5MiB", 1572864),
        ("2G", 2 << 30),
        ("1T", 1 << 40),
        (".5K", 512),
        ("100B", 100),
        (" 64 K ", 65536),
        ("1_000", 1000),
    ],
)
def test_parse_offset(text, value):
    assert parse_offset(text) == value


@pytest.mark.parametrize(
    "text", ["", "abc", "-4", "0x", "0x10K", "4X", "1.3K", "1e3", "4 KK", "0.1"]
)
def test_parse_offset_errors(text):
    with pytest.raises(ValueError, match="invalid offset"):
        parse_offset(text)


def test_parse_range():
    assert parse_range("0x1000:64K") == (4096, 65536)
    assert parse_range(":1M") == (None, 1 << 20)
    assert parse_range("4K:") == (4096, None)
    assert parse_range(":") == (None, None)
    for bad in ("4K", "1:2:3", "8K:4K", "x:"):
        with pytest.raises(ValueError):
            parse_range(bad)


def test_human_bytes():
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1024) == "1.00 KiB"
    assert human_bytes(1536) == "1.50 KiB"
    assert human_bytes(37.2 * 2**20) == "37.2 MiB"
    assert human_bytes(118 * 2**30) == "118 GiB"
    assert human_bytes(3 * 2**60).endswith("PiB")


def test_sparkline_levels():
    assert sparkline(np.linspace(0, 8, 8)) == SPARK_CHARS
    assert sparkline([0, 8, -1, 9, math.nan]) == "▁██▁ ".replace("▁██▁", "▁█▁█")
    assert sparkline([0.0, 0.5, 1.0], lo=0, hi=1, zero="·") == "·▅█"


def test_sparkline_resampling():
    values = np.zeros(1000)
    values[500] = 8
    assert sparkline(values, width=10, reduce="max") == "▁▁▁▁▁█▁▁▁▁"
    assert sparkline(values, width=10, reduce="mean") == "▁" * 10
    assert sparkline([0, 8], width=6) == "▁▁▁███"
    assert len(sparkline(np.arange(37.0), width=7)) == 7
    with pytest.raises(ValueError):
        sparkline([1], lo=2, hi=1)
    with pytest.raises(ValueError):
        sparkline([1], width=0)


def test_entropy_profile_text():
    values = np.concatenate([np.zeros(64), np.full(64, 8.0)])
    out = entropy_profile_text(values, start=0, stop=0x20000, width=32)
    lines = out.splitlines()
    assert "bits per byte" in lines[0]
    assert len(lines) == 1 + 4
    assert lines[1].startswith("0x00000  ")
    assert "▁" * 32 in lines[1]
    assert lines[3].startswith("0x10000  ")
    assert "█" * 32 in lines[3]
    assert lines[3].endswith("mean 8.00  max 8.00")
    short = entropy_profile_text([1.0, 2.0], start=16, stop=32)
    assert len(short.splitlines()) == 2
    assert "no data" in entropy_profile_text([], start=0, stop=0)
    with pytest.raises(ValueError):
        entropy_profile_text([1.0], start=5, stop=0)


def test_entropy_profile_text_says_when_points_are_too_small():
    values = np.full(64, 3.9)
    small = entropy_profile_text(values, start=0, stop=1024, point_bytes=16).splitlines()
    assert "only 16 B per point: biased low, at most 4.0 bits" in small[0]
    assert len(small) == 2
    enough = entropy_profile_text(values, start=0, stop=1 << 16, point_bytes=1024)
    assert "biased" not in enough


def ent_meta(data: bytes) -> dict[str, float]:
    """Compute what ``ent`` computes, the way it does (ent.c, randtest.c)."""
    b = np.frombuffer(data, dtype=np.uint8)
    n = len(b)
    counts = np.bincount(b, minlength=256).astype(np.float64)
    p = counts[counts > 0] / n
    expected = n / 256
    # Monte Carlo: 6-byte groups as two 24-bit coordinates, inside the circle?
    groups = b[: n // 6 * 6].reshape(-1, 6).astype(np.float64)
    x = groups[:, 0] * 65536 + groups[:, 1] * 256 + groups[:, 2]
    y = groups[:, 3] * 65536 + groups[:, 4] * 256 + groups[:, 5]
    radius = 256.0**3 - 1
    inside = np.count_nonzero(x * x + y * y <= radius * radius)
    # Serial correlation of each byte with the next, wrapping the last to the first.
    u = b.astype(np.float64)
    nxt = np.roll(u, -1)
    t1 = n * np.sum(u * nxt)
    t2 = np.sum(u) ** 2
    t3 = n * np.sum(u * u)
    scc = (t1 - t2) / (t3 - t2) if t3 != t2 else math.nan
    return {
        "entropy": float(-(p * np.log2(p)).sum()),
        "chi_square": float(((counts - expected) ** 2 / expected).sum()),
        "mean": float(u.mean()),
        "monte_carlo_pi": 4.0 * inside / len(groups),
        "serial_correlation": float(scc),
        "size": n,
    }


# Output of `ent` 1.2 (Fourmilab, 2008) for the inputs below, one sentence a line.
ENT_SHA256 = """\
Entropy = 7.997507 bits per byte.
Optimum compression would reduce the size of this 65536 byte file by 0 percent.
Chi square distribution for 65536 samples is 226.96, and randomly would exceed this value 89.62 percent of the times.
Arithmetic mean value of data bytes is 127.7530 (127.5 = random).
Monte Carlo value for Pi is 3.119575169 (error 0.70 percent).
Serial correlation coefficient is 0.003769 (totally uncorrelated = 0.0)."""  # noqa: E501

ENT_MIXED = """\
Entropy = 7.768958 bits per byte.
Optimum compression would reduce the size of this 922 byte file by 2 percent.
Chi square distribution for 922 samples is 572.91, and randomly would exceed this value less than 0.01 percent of the times.
Arithmetic mean value of data bytes is 121.8059 (127.5 = random).
Monte Carlo value for Pi is 3.032679739 (error 3.47 percent).
Serial correlation coefficient is 0.958507 (totally uncorrelated = 0.0)."""  # noqa: E501

ENT_CONSTANT = """\
Entropy = 0.000000 bits per byte.
Optimum compression would reduce the size of this 8 byte file by 100 percent.
Chi square distribution for 8 samples is 2040.00, and randomly would exceed this value less than 0.01 percent of the times.
Arithmetic mean value of data bytes is 97.0000 (127.5 = random).
Monte Carlo value for Pi is 4.000000000 (error 27.32 percent).
Serial correlation coefficient is undefined (all values equal!)."""  # noqa: E501


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(2048)),
            ENT_SHA256,
        ),
        (bytes(range(256)) * 3 + b"hello world, binglide!" * 7, ENT_MIXED),
        (b"aaaaaaaa", ENT_CONSTANT),
    ],
)
def test_stats_text_matches_ent(data, expected):
    assert stats_text(ent_meta(data)) == expected


def test_stats_text_uniform_counts():
    # Perfectly flat counts: chi-square 0, which random data would exceed
    # almost always (ent writes "more than than"; we drop the stray word).
    out = stats_text(ent_meta(bytes(range(256)) * 4))
    assert "is 0.00, and randomly would exceed this value more than 99.99 percent" in out
    assert out.startswith("Entropy = 8.000000 bits per byte.")


def chi_square_tail_by_integration(x: float, dof: int) -> float:
    """Integrate the chi-square density from 0 to x with Simpson's rule, in log space."""
    k = dof / 2
    steps = 200_000
    t = np.linspace(0.0, x, steps + 1)[1:]
    log_pdf = (k - 1) * np.log(t) - t / 2 - k * math.log(2) - math.lgamma(k)
    pdf = np.concatenate([[0.0 if k > 1 else math.inf], np.exp(log_pdf)])
    h = x / steps
    cdf = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return 1.0 - float(cdf)


@pytest.mark.parametrize("x", [150.0, 200.0, 226.96, 255.0, 280.0, 310.0, 380.0])
def test_chi_square_tail_against_integration(x):
    assert chi_square_upper_tail(x, 255) == pytest.approx(
        chi_square_tail_by_integration(x, 255), abs=1e-9
    )


def test_chi_square_tail_known_values():
    # Tabulated critical values (NIST/SEMATECH e-Handbook, and chi2.isf).
    assert chi_square_upper_tail(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert chi_square_upper_tail(18.307038, 10) == pytest.approx(0.05, abs=1e-6)
    assert chi_square_upper_tail(293.247835, 255) == pytest.approx(0.05, abs=1e-6)
    assert chi_square_upper_tail(310.457388, 255) == pytest.approx(0.01, abs=1e-6)
    # Two degrees of freedom have a closed form.
    for x in (0.1, 1.0, 5.0, 40.0):
        assert chi_square_upper_tail(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)
    assert chi_square_upper_tail(0.0, 255) == 1.0
    assert chi_square_upper_tail(1e7, 255) == 0.0
    with pytest.raises(ValueError):
        chi_square_upper_tail(1.0, 0)
    with pytest.raises(ValueError):
        chi_square_upper_tail(math.nan, 255)


def test_histogram_text():
    counts = np.zeros(256, dtype=np.int64)
    counts[0x00] = 600
    counts[ord("A")] = 300
    counts[ord(" ")] = 100
    counts[0xE5] = 100
    out = histogram_text(counts, top=3)
    lines = out.splitlines()
    assert lines[0] == "1,100 bytes, 4 distinct values; the 3 most frequent:"
    assert len(lines) == 2 + 3
    assert lines[2].startswith("0x00        ")
    assert "54.55%" in lines[2]
    assert lines[2].endswith("█" * 32)
    assert lines[3].startswith("0x41  'A'")
    assert lines[3].endswith("█" * 16)
    # Ties list in byte order: 0x20 before 0xe5.
    assert lines[4].startswith("0x20  ' '")
    assert "empty" in histogram_text(np.zeros(256))
    with pytest.raises(ValueError):
        histogram_text(np.zeros(255))


def test_diff_text():
    counts = np.zeros(256)
    counts[10] = 1
    counts[200:210] = 16
    out = diff_text(
        counts,
        start=0,
        stop=4096,
        total=161,
        sizes=[4096, 5000],
        first_offsets=[0xA3, 0xC80, 0xC81],
        width=32,
    )
    lines = out.splitlines()
    assert lines[0] == "sizes: 4,096 bytes vs 5,000 bytes"
    assert lines[1].startswith("files differ in length by 904 bytes")
    assert lines[2] == "161 differing bytes in 0x0..0x1000 (3.93% of 4,096)"
    assert lines[3] == "first differing offsets: 0xa3, 0xc80, 0xc81"
    where = lines[4]
    assert where.startswith("where:  |")
    bar = where[len("where:  |") : -1]
    assert len(bar) == 32
    assert bar[1] == "▁"  # one byte differs: low, but not "·"
    assert bar[0] == "·"
    assert "█" in bar[25:27]
    same = diff_text(np.zeros(8), start=0, stop=64, total=0, sizes=[64, 64], first_offsets=[])
    assert "identical" in same
    assert "length" not in same
