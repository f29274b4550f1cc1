"""Customer ids that are safe as file names: they can never escape a folder or collide.

Used by `split` (folder names) and by `train` (checkpoint names for flat and bucket inputs), so a
customer has the same name at every stage.
"""

from __future__ import annotations

import hashlib
import re

MAX_ID_LENGTH = 100
_SAFE_ID = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}")
_RENAMED_SHAPE = re.compile(r"--[0-9a-f]{16}$")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def safe_customer_id(raw: str) -> str:
    """A plain file name (no separators, not hidden, not '.' or '..') for a raw id.

    Ids that are already safe are kept; any other id gets a cleaned prefix plus a hash of the raw id, so
    distinct raw ids stay distinct. Ids that look like a renamed id are renamed too, which is what makes
    a kept id and a renamed id unable to collide.
    """
    if _SAFE_ID.fullmatch(raw) and not _RENAMED_SHAPE.search(raw):
        return raw
    cleaned = _UNSAFE_CHAR.sub("_", raw).lstrip(".")[:60] or "id"
    digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{cleaned}--{digest}"
