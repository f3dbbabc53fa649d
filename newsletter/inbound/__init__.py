"""The return mailbox: bounces, complaints, mailto unsubscribes and auto-replies coming back.

parse.py reads one message and says what it is and what it is about (no database);
record.py ties it to a delivery and records it; intake.py reads the sources (standard
input, a Maildir, an mbox file, an IMAP folder) and marks what it processed; report.py
sums it up. This wing writes one table of its own, inbound_messages (what was read, by
fingerprint); every status change goes through audience/subscribers.py (statuses and
events) and delivery/ledger.py (the delivery row).
"""
