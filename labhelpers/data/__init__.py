"""The rows: loading and validating datasets, their formats and the problems found in them, the chat template, and
which turn owns a token.
"""
