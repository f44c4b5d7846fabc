"""Pure spatial logic of the grid platform: CRS, validation, splitting, coverage.

Nothing in this package imports Flask or talks to a database; its tests run without either.
"""
