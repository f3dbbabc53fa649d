"""RSS and Atom feeds: poll the publisher's feeds and store their new items as articles.

`read.py` fetches and parses a feed and makes each item an article's Markdown (no
database); `poll.py` keeps the feeds and polls them.
Writes the `feeds` and `feed_items` tables (poll.py). New items are stored as articles
through content/store.py and released to the digests through digests/plan.py.
"""
