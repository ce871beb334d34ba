"""`tayori members …`: import and export from the command line (being built)."""
