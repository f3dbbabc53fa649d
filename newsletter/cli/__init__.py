"""The command line: click only. Each module parses one group of commands, calls the wings and prints.

`main.py` holds the `newsletter` group (the entry point), which imports a command's module
only when that command runs or shows its help; `common.py` the shared app object, options
and output helpers. Writes no table and runs no SQL: every read and write goes through a wing.
"""
