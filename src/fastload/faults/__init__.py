"""Fault injection during load (issue 12): what users type (spec), the userspace TCP proxy that
applies faults on a schedule (proxy), and tc/netem shaping on a network device (netem).

Nothing is imported here: `python -m fastload.faults.proxy` runs the proxy module as a program,
which must not have been imported by its package first.
"""
