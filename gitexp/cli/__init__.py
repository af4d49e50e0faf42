"""The `git exp` command line: a thin skin over the library.

main.py parses arguments and turns gitexp's errors into exit codes; each other module registers a
group of commands as plain functions returning an int. It may import every layer; nothing imports it.
"""
