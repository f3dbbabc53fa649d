"""`newsletter check`: will this mail reach the inbox? Findings before the first send.

DNS authentication (SPF, DKIM, DMARC, MX), each relay (TLS, certificate, AUTH), the setup
(placeholders, postal address, the web endpoint, provider limits) and, for an article, the
message as it would be sent (size, images, links, unsubscribe, SpamAssassin). Each check
returns Findings (findings.py); run.py runs them all. This wing writes no tables and sends
nothing.
"""
