"""Content: sender identities, templates built from blocks (conditional, shared), their
assembly into the HTML and text a send carries, merge-field checks, charsets and imports."""
