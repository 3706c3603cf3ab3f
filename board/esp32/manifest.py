# Freeze manifest for a custom ESP32 firmware with microwitch built in (bytecode in flash instead of heap):
#   ./build.sh build esp32        # first: it copies the pinned microdot's two sources to build/vendor/microdot/
#   cd micropython/ports/esp32 && make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/microwitch/board/esp32/manifest.py
# Frozen: the firmware package and microdot (the web page's HTTP server; pip-installed at build time, never
# committed). boot.py, main.py and the JSON files stay on the filesystem. MicroPython runs a manifest with this
# directory as the working directory, so the paths are relative to this file.
import os

_VENDOR = "../../build/vendor"  # written by tools/build_images.py (vendor_microdot), git-ignored
if not os.path.isfile(os.path.join(_VENDOR, "microdot", "microdot.py")):
    raise ValueError("build/vendor/microdot/ is missing: run `./build.sh build esp32` in the microwitch checkout")
include("$(PORT_DIR)/boards/manifest.py")
package("microwitch", base_path="../../firmware", opt=1)
package("microdot", files=["__init__.py", "microdot.py"], base_path=_VENDOR, opt=1)
