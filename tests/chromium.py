"""Headless Chromium for report tests: load a page with a probe script that writes its measures,
as JSON, into <pre id="ksearch-probe">; skipped where no Chromium is installed."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH (apt-get install chromium; .ci/run does)"
)


def probe_in_chromium(page: Path, tmp_path: Path, probe: str, width: int = 1400) -> tuple[dict, list[str]]:
    """`page` with the `probe` <script> put first in its <head>, loaded in a `width` px window: the
    probe's JSON, and the console errors Chromium logged."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("<head>", "<head>" + probe, 1), encoding="utf-8"
    )
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--window-size={width},1000",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r'<pre id="ksearch-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"chromium gave no probe result (rc {proc.returncode}): {proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    return json.loads(html.unescape(m.group(1))), console
