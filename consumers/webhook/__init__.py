"""Webhooks: readings, events or alerts as signed JSON POSTs (`plate-ocr webhook`)."""
