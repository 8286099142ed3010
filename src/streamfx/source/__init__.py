"""The source stage: eras and their readings from PostgreSQL, as Arrow in one long schema.

``postgres`` reads (long, wide and jsonb layouts, era tables and fixed windows, the one analysis
query); ``open`` connects and seeds the embedded default; ``datasets/`` holds the demo data
generator and the loader of the real Aarslev export.
"""
