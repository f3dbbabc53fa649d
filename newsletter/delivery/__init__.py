"""The sending engine: campaigns, the due-delivery queue, the ledger, the connection pool and its runs.

`campaigns.py` makes a campaign and its delivery rows; `queue.py` yields the deliveries
due, `ledger.py` records each outcome under the campaign's lease; `pool.py` sends over
reused SMTP connections, `run.py` runs a campaign (in several processes with
`processes.py`), `single.py` sends one-off messages (tests, confirmations), and
`confirmations.py` makes the campaign that mails every pending subscriber. `relays.py`
opens connections, `outcomes.py` classifies replies, `capture.py` is the built-in capture
server and `smtp_speedups.py` holds the aiosmtplib speed-ups.
Writes the `campaigns` and `deliveries` tables (today also `events` and a bounced
subscriber's status, and `articles.sent_at`).
"""
