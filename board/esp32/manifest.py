# Freeze manifest for a custom ESP32 firmware with microwitch built in (bytecode in flash instead of heap):
#   cd micropython/ports/esp32 && make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/microwitch/board/esp32/manifest.py
# The frozen package is the node's modules; boot.py, main.py and the JSON files stay on the filesystem.
include("$(PORT_DIR)/boards/manifest.py")
package("microwitch", base_path="../../firmware", opt=1)  # base_path is relative to this file
