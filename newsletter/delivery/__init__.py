"""The sending engine: campaigns, the due-delivery queue, the ledger, the connection pool and its runs.

`campaigns.py` makes a campaign and its delivery rows (through the ledger); `records.py`
reads campaigns and deliveries back (status, failures, what is pending) without loading
the engine; `queue.py` yields the deliveries due with their bytes, `ledger.py` records each
outcome under the campaign's lease; `pool.py` sends over reused SMTP connections, `run.py`
runs a campaign (in several processes with `processes.py`), `single.py` sends one-off
messages (tests, confirmations), `confirmations.py` makes the campaign that mails every
pending subscriber. `relays.py` opens connections, `outcomes.py` classifies
replies, `capture.py` is the built-in capture server and `smtp_speedups.py` holds the
aiosmtplib speed-ups (installed by each pool, checked first).
Writes the `campaigns` and `deliveries` tables, all through ledger.py. A hard bounce's
suppression and every event go through the audience wing; an article's sent mark through
content/store.py.
"""
