"""RSS and Atom feeds: poll the publisher's feeds and store their new items as articles.

Writes the `feeds` and `feed_items` tables (and, today, queues new articles for the
digest in `digest_queue`; articles themselves are stored through content/store.py).
"""
