"""The project's exceptions: one base class, each message something a user can act on.

The CLI maps every NewsletterError to `Error: <message>` and exit code 1; core modules raise
them and never print.
"""


class NewsletterError(Exception):
    """Base class of every error the tool reports to its user."""


class ConfigError(NewsletterError, ValueError):
    """newsletter.toml or a NEWSLETTER_* variable is missing, unknown or invalid."""


class NotInitialisedError(ConfigError):
    """The command ran outside a directory made by `newsletter init`."""


class InvalidEmailError(NewsletterError, ValueError):
    """An email address is not valid."""


class SubscriberNotFoundError(NewsletterError, LookupError):
    """No subscriber has that address."""


class ImportFileError(NewsletterError, ValueError):
    """A subscriber import file cannot be read at all (not one bad row: the whole file)."""


class ArticleError(NewsletterError, ValueError):
    """An article file cannot be turned into an email."""


class SendError(NewsletterError):
    """A campaign cannot be sent (not one recipient's failure: the run itself)."""


class HeaderValueError(NewsletterError, ValueError):
    """A value cannot go into a header: a line break or control character (header injection),
    an address that is not plain ASCII, or a malformed token or domain."""


class MessageTooLargeError(ArticleError):
    """An article's or a digest's email would be larger than sending.max_message_mb."""


class InboundError(NewsletterError, OSError):
    """A return mailbox (Maildir, mbox file, IMAP folder) cannot be read."""


class LookupFailedError(NewsletterError, OSError):
    """A DNS look-up of `newsletter check` got no usable answer (SERVFAIL, no resolver)."""


class LookupTimeoutError(LookupFailedError, TimeoutError):
    """A DNS server did not answer a look-up of `newsletter check` in time."""


class SpfSyntaxError(NewsletterError, ValueError):
    """An SPF record (or one it includes) that receivers cannot evaluate: a permerror."""


class PruneAgeError(NewsletterError, ValueError):
    """`prune` was given no age, or one it cannot read or that is too short."""


class SignerGoneError(NewsletterError, ConnectionError):
    """A DKIM signer process stopped (killed, out of memory): the run signs the rest itself."""
