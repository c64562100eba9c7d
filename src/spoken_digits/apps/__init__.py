"""Apps: the command-line tool, the web page and export."""
