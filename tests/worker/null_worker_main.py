"""Run a real BatchWorker with the NullReader in its own process, for the signal tests.

Usage: python null_worker_main.py DELAY_S   (settings from the PLATE_OCR_ environment)
"""

import logging
import os
import sys

from plate_ocr.connection import connect
from plate_ocr.settings import Settings
from worker.batch_worker import BatchWorker
from worker.null_reader import NullReader

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = Settings.from_env(os.environ)
    reader = NullReader(delay_s=float(sys.argv[1]))
    sys.exit(BatchWorker(settings, reader=reader, connection=connect(settings)).work())
