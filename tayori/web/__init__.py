"""Web: the operator UI's shell (layout, dashboard, sign-in, language and workspace switching)."""
