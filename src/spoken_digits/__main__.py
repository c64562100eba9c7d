"""`python -m spoken_digits` runs the command-line tool."""

from spoken_digits.apps.cli import main

raise SystemExit(main())
