"""Digests and schedules: which articles a daily or weekly digest holds, when it is due, scheduled sends.

`plan.py` plans and creates digests (their campaigns and deliveries through
delivery/ledger.py) and releases articles to them, `schedule.py` keeps the sends scheduled
with `send --at`; the calendar itself is the base module periods.py.
Writes `digest_queue`, `digest_periods` and `digest_campaigns` (plan.py) and
`scheduled_sends` (schedule.py).
"""
