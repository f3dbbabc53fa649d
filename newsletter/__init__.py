"""newsletter: email a publisher's articles and digests to its subscribers."""

__version__ = "0.1.0"
