"""A local Backblaze B2 native-API emulator for tests (see b2emu.py for usage)."""

from .b2emu import start  # noqa: F401
from .server import Emulator  # noqa: F401
