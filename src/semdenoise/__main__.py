"""``python -m semdenoise``: the command line, where the ``semdenoise`` script is not on PATH."""

from semdenoise.cli import main

main()
