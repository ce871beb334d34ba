"""Members: the people a workspace talks to, their company-defined attributes, lists, segments,
consent records, suppressions, and CSV import and export.
"""
