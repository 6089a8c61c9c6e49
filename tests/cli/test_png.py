from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binglide.cli.png import FONT, GLYPH_HEIGHT, GLYPH_WIDTH, encode_png, text, text_width
from tests.cli.pngdecode import chunks, decode


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 9), (4, 6, 3), (9, 2, 3), (5, 5, 4)])
def test_roundtrip_random(shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(decode(encode_png(pixels)), pixels)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    channels=st.sampled_from([1, 3, 4]),
    seed=st.integers(0, 2**32 - 1),
    smooth=st.booleans(),
)
def test_roundtrip_any_image(h, w, channels, seed, smooth):
    rng = np.random.default_rng(seed)
    if smooth:
        # Gradients and flat areas make the encoder pick every filter type.
        base = np.add.outer(np.arange(h) * rng.integers(0, 40), np.arange(w) * rng.integers(0, 40))
        pixels = (base[:, :, None] + rng.integers(0, 3, (h, w, channels))).astype(np.uint8)
    else:
        pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    if channels == 1:
        pixels = pixels[:, :, 0]
    assert np.array_equal(decode(encode_png(pixels)), pixels)


def test_header_and_chunks():
    data = encode_png(np.zeros((7, 11, 3), dtype=np.uint8))
    kinds = [kind for kind, _ in chunks(data)]
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    assert b"IDAT" in kinds
    ihdr = chunks(data)[0][1]
    assert ihdr == bytes.fromhex("0000000b 00000007 08 02 00 00 00")


def test_uses_filters_that_shrink_gradients():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    assert len(encode_png(ramp)) < 2000
    assert np.array_equal(decode(encode_png(ramp)), ramp)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((2, 2), dtype=np.float64),
        np.zeros((2, 2, 2), dtype=np.uint8),
        np.zeros((2,), dtype=np.uint8),
        np.zeros((0, 3), dtype=np.uint8),
    ],
)
def test_rejects_bad_arrays(pixels):
    with pytest.raises(ValueError):
        encode_png(pixels)


def test_font_covers_printable_ascii():
    for code in range(0x20, 0x7F):
        glyph = FONT[chr(code)]
        assert glyph.shape == (GLYPH_HEIGHT, GLYPH_WIDTH), repr(chr(code))
    # Every visible glyph is distinct, so no two characters read the same.
    shapes = {FONT[chr(c)].tobytes() for c in range(0x21, 0x7F)}
    assert len(shapes) == 0x7F - 0x21


def test_text_draws_glyphs():
    image = np.zeros((10, 40), dtype=np.uint8)
    end = text(image, 1, 2, "0x1A", 200)
    assert end == 1 + 4 * 6
    expected = np.zeros_like(image)
    for i, char in enumerate("0x1A"):
        expected[2:9, 1 + 6 * i : 6 + 6 * i][FONT[char]] = 200
    assert np.array_equal(image, expected)


def test_text_in_color_and_scaled():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    text(image, 0, 0, "I", (10, 20, 30), scale=2)
    lit = np.asarray(image.any(axis=2))
    assert np.array_equal(lit[:14, :10], FONT["I"].repeat(2, 0).repeat(2, 1))
    assert not lit[14:].any()
    assert (image[lit] == (10, 20, 30)).all()
    assert text_width("abc", scale=2) == (3 * 6 - 1) * 2
    assert text_width("") == 0


def test_text_clips_at_edges():
    image = np.zeros((5, 8), dtype=np.uint8)
    text(image, -3, -2, "KiB%:", 255)
    text(image, 6, 3, "M", 255)
    assert image.any()


def test_text_unknown_characters_draw_a_box():
    image = np.zeros((7, 5), dtype=np.uint8)
    text(image, 0, 0, "\u00e9", 1)
    assert image[0].all()
    assert image[-1].all()


def test_text_rejects_bad_scale():
    with pytest.raises(ValueError):
        text(np.zeros((7, 7), dtype=np.uint8), 0, 0, "a", 1, scale=0)
