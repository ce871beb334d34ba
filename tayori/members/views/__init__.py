"""Operator UI pages for members, attributes, lists, segments, jobs and suppressions."""
