"""Watch lists and alerts (`plate-ocr watch`, `plate-ocr lists`)."""
