"""`python -m spoken_digits` runs the command-line tool."""

from spoken_digits.cli import main

raise SystemExit(main())
