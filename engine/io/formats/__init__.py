"""One module per groom file format.

Every module has ``SUFFIXES`` and ``read(path) -> ReadResult`` (groom in file coordinates); the
writable ones have ``write(groom, path, options)`` which writes a groom that
:func:`engine.io.export.export_groom` has already converted to file units and axes (see
``_common``'s docstring for the exact conversion) to ``path`` (a temporary file that the caller
renames into place). Use :mod:`engine.io.export` rather than these modules directly.
"""
