"""RSS and Atom feeds: poll the publisher's feeds and store their new items as articles.

Writes the `feeds` and `feed_items` tables (poll.py). New items are stored as articles
through content/store.py and released to the digests through digests/plan.py.
"""
