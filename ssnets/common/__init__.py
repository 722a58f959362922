"""Helpers every other part of ssnets shares: the user-error type, safe file writes, Markdown tables.

Nothing here knows about models, data or tracking; these modules import only the
standard library (and NumPy-free Python values), so any subpackage may import them.
"""
