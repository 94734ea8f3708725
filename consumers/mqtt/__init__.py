"""The MQTT bridge: readings out to an MQTT broker, acknowledged after PUBACK (`plate-ocr mqtt`)."""
