"""What follows the results stream downstream: vehicle events, the MQTT bridge, the dashboard.

Each consumer reads the stream through `plate_ocr.stream` with the shared settings; none imports
the reading engine (`reader`), the queue runtime (`worker`) or the model stack.
"""
