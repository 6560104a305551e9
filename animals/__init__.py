"""The one definition of the animals model, its preprocessing and its labels.

Training imports this package and the archive packs it, so what was trained is exactly what is served.
"""
