"""What a subscriber reads: the article model and its parsers, checks, rendering, the message bytes and DKIM.

`article.py` is the model, `parse.py` reads files (`plain_export.py`, `markdown.py`),
`checks.py` checks them, `store.py` keeps them; `render.py` turns them into a
`RenderedEmail` (`rendered.py`, also its stored JSON), with dates and periods in words by
`dates.py`; `message.py` into the bytes sent (its Subject,
From and To lines from `headers.py`), signed by `dkim.py`; `preview.py` builds and
writes a preview.
Writes the `articles` table (store.py, which also marks an article sent).
"""
