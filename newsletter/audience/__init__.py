"""Who gets the newsletter: subscribers, suppressions, their events, and import/export of subscriber files.

`subscribers.py` adds, confirms, changes, suppresses (also after a hard bounce) and erases
subscribers; `events.py` is the append-only event log (never an address or a reply text);
`import_export.py` reads and writes subscriber files, storing through subscribers.py.
Writes the `subscribers` and `suppressions` tables (subscribers.py) and `events`
(events.py), and no other module writes them.
"""
