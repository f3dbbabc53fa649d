"""Digests and schedules: which articles a daily or weekly digest holds, when it is due, scheduled sends.

`periods.py` is the calendar (periods, local times, schedule entries), `plan.py` plans
and creates digests, `schedule.py` keeps the sends scheduled with `send --at`.
Writes `digest_queue`, `digest_periods`, `digest_campaigns` and `scheduled_sends` (today
`plan.py` also creates the digest's `campaigns` and `deliveries` rows).
"""
