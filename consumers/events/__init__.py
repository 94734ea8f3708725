"""Vehicle events: the readings of one track voted into one `PlateEvent` (`plate-ocr events`)."""
