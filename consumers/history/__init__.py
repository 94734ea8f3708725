"""The searchable history: readings and events in PostgreSQL (`plate-ocr store`)."""
