"""The ``ovdet`` command line: one module per subcommand; each parses, then calls the Python API."""
