"""The seed's test script, kept so that existing habits still work:

    python test_ocr.py plate_crop.jpg [confidence]
    from test_ocr import read_plate

Everything lives in `reader.compat`; `plate-ocr read` is the maintained command.
"""

import os
import sys

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: never download

from reader.compat import read_plate, seed_main

__all__ = ["read_plate"]

if __name__ == "__main__":
    sys.exit(seed_main(sys.argv[1:]))
