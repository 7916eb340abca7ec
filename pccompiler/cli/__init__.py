"""The `pcc` command line: `main.py` builds the parser from one module per
subcommand (each with `register(subparsers)` and `run(args)`); `paths`,
`data_args` and `compile_options` hold what several subcommands share.
User errors end in one line on stderr, never a traceback."""
