"""The signer process of delivery/signing.py: a DKIM key loaded once, batches signed on request.

Kept apart (importing only the signer and children.py) so that the spawned process starts
fast and small: it never loads the sending engine, the database or the templates.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from ..children import die_with_parent
from ..content.dkim import DkimSigner

_signer: DkimSigner | None = None  # in a signer process: the key, loaded once


def sign_all(
    signer: DkimSigner, heads: Sequence[bytes], body_hashes: Sequence[str], include_headers: Sequence[str], now: int,
) -> list[bytes]:
    """The DKIM-Signature header of each message (its header block and bh=), as
    MessageBuilder.build would put it in front."""
    return [
        signer.sign_head(head, body_hash=hashed, include_headers=include_headers, now=now)
        for head, hashed in zip(heads, body_hashes, strict=True)
    ]


def start(signer: DkimSigner, parent: int) -> None:
    """The signer process's initialiser."""
    global _signer
    die_with_parent(parent)  # a signer has nothing to do without the run that feeds it
    # Ctrl-C reaches the whole process group; the parent decides what stops, and a signer
    # that died of it would look like a broken pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _signer = signer


def ready() -> bool:
    """A first job: done once the process has started and holds the key."""
    return _signer is not None


def sign_batch(heads: list[bytes], body_hashes: list[str], include_headers: Sequence[str], now: int) -> list[bytes]:
    assert _signer is not None, "the signer process was started without its key"
    return sign_all(_signer, heads, body_hashes, include_headers, now)
