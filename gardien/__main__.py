"""`python -m gardien` runs the `gardien` command."""

from gardien.cli import main

main()
