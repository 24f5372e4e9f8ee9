"""A fake camera for browser tests: a QR code as a .y4m video that chromium films in a loop
(`--use-file-for-fake-video-capture`, the `camera` fixture in tests/conftest.py).

Y4M is a header line, then "FRAME\\n" and the raw I420 planes per frame: luma at full size,
then the two chroma planes at half width and height. A black-and-white picture needs luma only
(0 black, 255 white) and neutral chroma (128), so no imaging library is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import qrcode
import qrcode.constants

WIDTH, HEIGHT = 640, 480


# A hand-held phone films a code from a distance that changes: its modules are a few pixels
# wide, more or fewer from frame to frame. The decoder (zxing-js) misses some codes at one
# size that it reads at another (measured on 200 ticket codes at 640x480: 19 % missed at 7 px
# per module, 3 % at 4 px, none at every size), so a camera that shows one still picture for
# ever would test one unlucky frame rather than a venue's phone.
DISTANCES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # size of the code in each shot, relative to the largest
# Frames per shot; the video runs at 10 frames per second, in a loop of 23 frames. The loop's
# length is prime on purpose. The scanner decodes a frame about every 150 ms, each try at the
# next of its three sizes (webui/static/js/qr-scan.js), so it meets the loop in lock-step. With
# the former loop of 9 frames, a steady 150 ms cadence decoded each size on 2 frames only (6
# of the 27 frame-size pairs), and a code readable only in the others was never read: a
# ticket went unread for 60 s in a run of the browser tests on their own (2026-12-05). Of 80
# ticket codes measured that day, some were readable in only 4 of the 18 shot-size pairs.
# With 23 frames the same cadence reaches every frame at every size.
SHOT_FRAMES = (4, 4, 4, 4, 4, 3)


def _luma_of_code(text: str | None, relative: float, shift: int) -> bytes:
    """One frame's luma: the QR of `text` (with its quiet zone) centred on white, as large as
    `relative` of the largest that fits, moved `shift` pixels right and down."""
    matrix: list[list[bool]] = []
    if text is not None:
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
        qr.add_data(text)
        qr.make(fit=True)
        matrix = qr.get_matrix()  # with the quiet zone (the border) around it
    size = max(len(matrix), 1)
    largest = (min(WIDTH, HEIGHT) * 9 // 10) // size
    assert largest >= 4, f"{text!r} is too long for a {WIDTH}x{HEIGHT} frame"
    scale = max(3, round(largest * relative))
    left = (WIDTH - size * scale) // 2 + shift
    top = (HEIGHT - size * scale) // 2 + shift
    luma = bytearray(b"\xff" * (WIDTH * HEIGHT))
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if not dark:
                continue
            for y in range(top + r * scale, top + (r + 1) * scale):
                start = y * WIDTH + left + c * scale
                luma[start : start + scale] = b"\x00" * scale
    return bytes(luma)


def qr_y4m(text: str | None, path: Path) -> Path:
    """Write a .y4m of `text` as a QR code filmed from a few distances (None: a blank white
    picture, a camera that sees no code) and return its path."""
    chroma = b"\x80" * ((WIDTH // 2) * (HEIGHT // 2))
    frames = b"".join(
        (b"FRAME\n" + _luma_of_code(text, relative, shift * 5) + chroma + chroma) * count
        for shift, (relative, count) in enumerate(zip(DISTANCES, SHOT_FRAMES, strict=True))
    )
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frames)
    return path


def image_y4m(image: Any, path: Path, frames: int = 2) -> Path:
    """Write a .y4m of a picture (a PIL image, e.g. a printed PDF page rendered by pypdfium2),
    scaled to fit the frame and centred on white, and return its path: the camera films what
    was printed, not a QR made again from the text."""
    from PIL import Image

    gray = image.convert("L")
    gray.thumbnail((WIDTH * 9 // 10, HEIGHT * 9 // 10), Image.Resampling.NEAREST)
    canvas = Image.new("L", (WIDTH, HEIGHT), 255)
    canvas.paste(gray, ((WIDTH - gray.width) // 2, (HEIGHT - gray.height) // 2))
    chroma = b"\x80" * ((WIDTH // 2) * (HEIGHT // 2))
    frame = b"FRAME\n" + canvas.tobytes() + chroma + chroma
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * frames)
    return path


def scanner_state(page: Any) -> dict[str, Any]:
    """What the page's scanner is doing, for a failure message: its state, the frames it has
    tried, and the video's own readiness (no frames and frames without a code look alike on a
    screenshot)."""
    return page.evaluate(
        """() => {
          const box = document.querySelector('.qr-scan');
          const v = box && box.querySelector('video');
          return box && {
            state: box.getAttribute('data-qr-state'),
            tries: box.getAttribute('data-qr-tries'),
            error: box.getAttribute('data-qr-error'),
            readyState: v && v.readyState, width: v && v.videoWidth,
            height: v && v.videoHeight, time: v && v.currentTime, paused: v && v.paused,
          };
        }"""
    )


def wait_for_scan(page: Any, locator: Any, timeout_ms: int = 60_000) -> None:
    """Wait until `locator` (what the page shows once a code was read) is visible; on timeout,
    fail with the scanner's state."""
    try:
        locator.wait_for(state="visible", timeout=timeout_ms)
    except Exception as exc:
        raise AssertionError(f"no code read; scanner: {scanner_state(page)}") from exc
