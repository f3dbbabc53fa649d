"""Who gets the newsletter: subscribers, suppressions, their events, and import/export of subscriber files.

Writes the `subscribers`, `suppressions` and `events` tables (today delivery/ledger.py and
delivery/single.py also write `events` and a bounced subscriber's status).
"""
