"""Test configuration: hypothesis runs derandomized under CI, so a CI run cannot flake."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
