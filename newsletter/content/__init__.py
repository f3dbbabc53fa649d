"""What a subscriber reads: the article model and its parsers, checks, rendering, the message bytes and DKIM.

`article.py` is the model, `parse.py` reads files (`plain_export.py`, `markdown.py`),
`store.py` keeps them; `render.py` turns them into HTML and text, `message.py` into the
bytes sent (its Subject, From and To lines from `headers.py`), signed by `dkim.py`;
`preview.py` writes a preview file.
Writes the `articles` table (through `store.py`; today delivery/campaigns.py also marks
an article sent).
"""
