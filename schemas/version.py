"""The schema version stamped on every job and reading.

Minor bumps only add optional fields; a major bump breaks consumers, who should check it.
"""

from typing import Final

__all__ = ["SCHEMA_VERSION", "SCHEMA_VERSION_PATTERN", "is_compatible"]

SCHEMA_VERSION: Final = "1.1"  # 1.1: candidates, recogniser
# The versions `is_compatible` accepts, for the JSON Schema: the same major, any minor.
SCHEMA_VERSION_PATTERN: Final = rf"^{SCHEMA_VERSION.split('.', 1)[0]}\.[0-9]+$"


def is_compatible(version: str) -> bool:
    """True when a document of `version` can be read by this code (same major version)."""
    return version.split(".", 1)[0] == SCHEMA_VERSION.split(".", 1)[0]
