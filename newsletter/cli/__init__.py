"""The command line: click only. Each module parses one group of commands, calls the wings and prints.

`main.py` holds the `newsletter` group (the entry point); `common.py` the shared app object,
options and output helpers. Writes no table itself (today `send.py` still updates
`deliveries` for `retry --now`; that SQL is to move into delivery/).
"""
