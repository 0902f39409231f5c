"""Containers, daemonless: records in the store, one monitor process per running container (monitor.py), and the
commands over them (lifecycle.py). See README.md, "Containers"."""
