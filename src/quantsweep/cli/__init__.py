"""The command line: flags -> config -> the same library call the Python API makes -> print."""
