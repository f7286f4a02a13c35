"""What students look at: tables, plots, live curves, widgets, and their own progress.
"""
