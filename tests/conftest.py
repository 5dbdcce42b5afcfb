"""Test configuration: hypothesis derandomized under CI (so a CI run cannot flake), a headless browser."""

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def render_in_chromium(tmp_path: Path) -> Callable[[Path], tuple[str, list[str]]]:
    """Open a page from the file system in headless Chromium: returns (DOM, console lines).

    The test is skipped where Chromium is not installed (``make test`` installs it when it can).
    """
    found = [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")]
    browser = next((path for path in found if path), None)
    if browser is None:
        pytest.skip("Chromium is not installed")

    def render(page: Path) -> tuple[str, list[str]]:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]

    return render
