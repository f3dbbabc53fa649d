"""The signer process of delivery/signing.py: a DKIM key loaded once, batches signed on request.

Started as `python -m newsletter.delivery.signer_worker FD PARENT`, FD being its end of a
socketpair with the sending process. Kept apart (importing only the signer and
children.py) so that it starts fast and small: it never loads the sending engine, the
database or the templates.

Every frame, both ways, is a 4-byte big-endian length and a pickle (both ends are our own
processes). The first frame holds the DkimSigner and the headers to sign (the key travels
over the socket, never through a file) and is answered with True once the key is loaded;
every later frame holds (t=, header blocks, their bh=) and is answered, in order, with the
signature headers or the exception that stopped them. End of input ends the process.
"""

from __future__ import annotations

import pickle
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import cast

from ..children import die_with_parent
from ..content.dkim import DkimSigner

LENGTH = 4  # bytes of the length before every frame


def sign_all(
    signer: DkimSigner, heads: Sequence[bytes], body_hashes: Sequence[str], include_headers: Sequence[str], now: int,
) -> list[bytes]:
    """The DKIM-Signature header of each message (its header block and bh=), as
    MessageBuilder.build would put it in front."""
    return [
        signer.sign_head(head, body_hash=hashed, include_headers=include_headers, now=now)
        for head, hashed in zip(heads, body_hashes, strict=True)
    ]


def frame(value: object) -> bytes:
    """`value` as one frame of the channel."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(LENGTH, "big") + data


def _read_exactly(channel: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None at end of input (the sending process closed its end or died)."""
    data = bytearray()
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _frames(channel: socket.socket) -> Iterator[object]:
    """Each frame the sending process sends, unpickled, until it closes its end."""
    while True:
        head = _read_exactly(channel, LENGTH)
        body = None if head is None else _read_exactly(channel, int.from_bytes(head, "big"))
        if body is None:
            return
        yield pickle.loads(body)


def serve(channel: socket.socket) -> None:
    """Answer the sending process's frames on `channel` until it closes its end."""
    signer: DkimSigner | None = None
    include_headers: Sequence[str] = ()
    for request in _frames(channel):
        if signer is None:
            signer, include_headers = cast(tuple[DkimSigner, tuple[str, ...]], request)
            channel.sendall(frame(True))
            continue
        now, heads, body_hashes = cast(tuple[int, list[bytes], list[str]], request)
        try:
            reply: object = sign_all(signer, heads, body_hashes, include_headers, now)
        except Exception as exc:  # the sending process decides what a failed batch means
            reply = exc
        channel.sendall(frame(reply))


def main(argv: Sequence[str]) -> None:
    fd, parent = int(argv[0]), int(argv[1])
    die_with_parent(parent)  # a signer has nothing to do without the run that feeds it
    # Ctrl-C reaches the whole process group; the parent decides what stops, and a signer
    # that died of it would look like a fault.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with socket.socket(fileno=fd) as channel:
        serve(channel)


if __name__ == "__main__":
    main(sys.argv[1:])
