"""What the tests share: the command line run in-process or in a process of its own, files in the
formats the commands read, servers and the browser. Imported as ``helpers.NAME`` (tests/ is on the
path while pytest runs, and on PYTHONPATH for the processes that load a helper by class path)."""
