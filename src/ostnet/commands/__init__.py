"""One module per ``ostnet`` subcommand; each defines ``register(subparsers)``."""
