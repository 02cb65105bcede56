from fastload.cli import entry

entry()
